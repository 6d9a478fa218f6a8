import Foundation
import GatehouseCore

/// A subcommand of `gatehouse`. Each one parses its own arguments and returns an exit status.
public protocol Subcommand: Sendable {
    static var name: String { get }
    /// One line for `gatehouse help`.
    static var summary: String { get }
    /// The full usage text, printed by `gatehouse help NAME` and on a usage error.
    static var usage: String { get }
    static func run(arguments: [String], context: CommandContext) async throws -> Int32
}

/// What a subcommand may use: output streams and the logger. Tests pass their own.
public struct CommandContext: Sendable {
    public var standardOutput: @Sendable (String) -> Void
    public var standardError: @Sendable (String) -> Void
    public var logger: Logger

    public init(standardOutput: @escaping @Sendable (String) -> Void,
        standardError: @escaping @Sendable (String) -> Void, logger: Logger)
    {
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.logger = logger
    }

    /// Prints to the process's real stdout and stderr, logs JSON lines to stderr.
    public static func live(logLevel: LogLevel = .info) -> CommandContext {
        CommandContext(
            standardOutput: { text in FileHandle.standardOutput.write(Data(text.utf8)) },
            standardError: { text in FileHandle.standardError.write(Data(text.utf8)) },
            logger: Logger(label: "gatehouse", minimumLevel: logLevel))
    }
}

/// A usage mistake: the message is printed with the subcommand's usage, exit status 64 (EX_USAGE).
public struct UsageError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The `gatehouse` command: finds the subcommand and runs it.
public enum GatehouseCommand {
    public static let subcommands: [any Subcommand.Type] = [
        ServeCommand.self, APICommand.self, WorkerCommand.self, PlayoutCommand.self, MonitorCommand.self, STBCommand.self, AnalyzeCommand.self, MigrateCommand.self,
        KeygenCommand.self, TokenCommand.self,
    ]

    public static func main(arguments: [String], context: CommandContext) async -> Int32 {
        guard let name = arguments.first, name != "help", name != "--help", name != "-h" else {
            if arguments.count >= 2, let command = subcommands.first(where: { $0.name == arguments[1] }) {
                context.standardOutput(command.usage + "\n")
                return 0
            }
            context.standardOutput(overview())
            return arguments.isEmpty ? 64 : 0
        }
        guard let command = subcommands.first(where: { $0.name == name }) else {
            context.standardError("gatehouse: unknown command '\(name)'\n\n" + overview())
            return 64
        }
        do {
            return try await command.run(arguments: Array(arguments.dropFirst()), context: context)
        } catch let error as UsageError {
            context.standardError("gatehouse \(name): \(error)\n\n\(command.usage)\n")
            return 64
        } catch {
            context.standardError("gatehouse \(name): \(error)\n")
            return 1
        }
    }

    static func overview() -> String {
        var text = "usage: gatehouse COMMAND [OPTIONS]\n\ncommands:\n"
        for command in subcommands {
            text += "  " + command.name.padding(toLength: 12, withPad: " ", startingAt: 0) + command.summary + "\n"
        }
        text += "\n'gatehouse help COMMAND' shows a command's options.\n"
        return text
    }
}
