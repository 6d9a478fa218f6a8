/// `gatehouse analyze FILE.ts`: offline EMM analysis of a capture. (Filled in by the TS work.)
public enum AnalyzeCommand: Subcommand {
    public static let name = "analyze"
    public static let summary = "offline analysis of a transport stream capture"
    public static let usage = "usage: gatehouse analyze FILE.ts [--bitrate BITS_PER_SECOND] [--json]"
    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        throw UsageError("not implemented yet")
    }
}
