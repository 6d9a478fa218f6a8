// Placeholder: replaced by the bus module's sources.
