import GatehouseCore

/// So `ServiceRunner` can run the playout next to the other services (`gatehouse serve`).
extension PlayoutService: GatehouseService {
    public var name: String { "playout" }
}
