import Foundation
import GatehouseCLI

// The executable stays thin: everything lives in GatehouseCLI so it can be tested.
let status = await GatehouseCommand.main(arguments: Array(CommandLine.arguments.dropFirst()), context: .live())
exit(status)
