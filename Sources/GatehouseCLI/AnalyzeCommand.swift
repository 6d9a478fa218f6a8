import Foundation
import GatehouseAnalysis
import GatehouseTS

/// `gatehouse analyze FILE.ts`: offline EMM analysis of a capture — PIDs and bit rates,
/// the CAT and its EMM PIDs, EMM sections per table_id, CRC and continuity errors.
public enum AnalyzeCommand: Subcommand {
    public static let name = "analyze"
    public static let summary = "offline analysis of a transport stream capture"
    public static let usage = """
        usage: gatehouse analyze FILE.ts [--bitrate BITS_PER_SECOND] [--emm-pid PID]... [--json]

          --bitrate N    TS bit rate to use when the capture has no PCR (bit/s)
          --emm-pid PID  also gather sections on PID (decimal or 0x hex), e.g. when the CAT is missing
          --json         machine-readable output (stable keys)
        """

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        var path: String?
        var options = AnalysisOptions()
        var isJSON = false
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            switch argument {
            case "--json":
                isJSON = true
            case "--bitrate":
                i += 1
                guard i < arguments.count, let rate = Double(arguments[i]), rate > 0, rate.isFinite else {
                    throw UsageError("--bitrate needs a positive number of bits per second")
                }
                options.bitRate = rate
            case "--emm-pid":
                i += 1
                guard i < arguments.count, let pid = parsePID(arguments[i]) else {
                    throw UsageError("--emm-pid needs a PID from 0 to 8191 (decimal or 0x hex)")
                }
                options.extraEMMPIDs.append(pid)
            default:
                if argument.hasPrefix("-") && argument != "-" { throw UsageError("unknown option '\(argument)'") }
                guard path == nil else { throw UsageError("only one capture file, got '\(argument)' too") }
                path = argument
            }
            i += 1
        }
        guard let path else { throw UsageError("which capture? give FILE.ts") }
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            var isDirectory: ObjCBool = false
            if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
                throw AnalyzeFailure("cannot read '\(path)': no such file")
            }
            if isDirectory.boolValue { throw AnalyzeFailure("cannot read '\(path)': it is a directory") }
            throw AnalyzeFailure("cannot read '\(path)': permission denied or I/O error")
        }
        let report: CaptureReport
        do {
            report = try CaptureAnalyzer.analyze(bytes, options: options)
        } catch {
            throw AnalyzeFailure("'\(path)': \(error)")
        }
        if isJSON {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            encoder.keyEncodingStrategy = .convertToSnakeCase
            let data = try encoder.encode(report)
            context.standardOutput(String(decoding: data, as: UTF8.self) + "\n")
        } else {
            context.standardOutput(render(report, path: path))
        }
        return 0
    }

    static func parsePID(_ text: String) -> UInt16? {
        let value: UInt16? =
            text.lowercased().hasPrefix("0x") ? UInt16(text.dropFirst(2), radix: 16) : UInt16(text)
        guard let value, value <= TS.PID.maximum else { return nil }
        return value
    }

    /// The human table.
    static func render(_ r: CaptureReport, path: String) -> String {
        var out = "capture: \(path)\n"
        out += "packets: \(r.packets)"
        if r.leadingBytes > 0 { out += ", \(r.leadingBytes) leading byte(s) skipped" }
        if r.trailingBytes > 0 { out += ", \(r.trailingBytes) trailing byte(s) ignored" }
        out += "\n"
        switch r.bitRate.source {
        case .pcr: out += "TS bit rate: \(grouped(r.bitRate.bitsPerSecond)) b/s (from PCRs)\n"
        case .user: out += "TS bit rate: \(grouped(r.bitRate.bitsPerSecond)) b/s (given with --bitrate)\n"
        case .unknown: out += "TS bit rate: unknown (no PCR; give --bitrate)\n"
        }
        if let duration = r.durationSeconds { out += "duration: \(String(format: "%.3f", duration)) s\n" }
        out += "transport errors (TEI): \(r.transportErrors), sync errors: \(r.syncErrors)\n\n"

        out += pad("PID", 14) + pad("packets", 10, right: true) + pad("b/s", 14, right: true)
            + pad("CC err", 8, right: true) + pad("dup", 6, right: true) + "  flags\n"
        for p in r.pids {
            var flags: [String] = []
            if let role = p.role { flags.append(role) }
            if p.hasPCR { flags.append("PCR") }
            if p.scrambledPackets > 0 { flags.append("scrambled") }
            out += pad("\(p.pid.hex) (\(p.pid.value))", 14) + pad("\(p.packets)", 10, right: true)
                + pad(grouped(p.bitRate), 14, right: true) + pad("\(p.continuityErrors)", 8, right: true)
                + pad("\(p.duplicatePackets)", 6, right: true) + "  " + flags.joined(separator: ",") + "\n"
        }
        out += "\n"
        if let cat = r.cat {
            out += "CAT: version \(cat.versionNumber), \(r.catSections) valid section(s)\n"
            for d in cat.caDescriptors {
                out += "  CA_system_id \(d.caSystemIDHex)  EMM PID \(d.emmPID.hex)"
                out += d.privateData.isEmpty ? "\n" : "  private data \(d.privateData)\n"
            }
        } else {
            out += "CAT: none\n"
        }
        out += "EMM PIDs: " + (r.emmPIDs.isEmpty ? "none" : r.emmPIDs.map(\.hex).joined(separator: ", ")) + "\n"
        if !r.emmTables.isEmpty {
            out += "\n" + pad("PID", 10) + pad("table_id", 10) + pad("sections", 10, right: true)
                + pad("bytes", 12, right: true) + pad("b/s", 14, right: true) + "\n"
            for t in r.emmTables {
                out += pad(t.pid.hex, 10) + pad(t.tableIDHex, 10) + pad("\(t.sections)", 10, right: true)
                    + pad("\(t.bytes)", 12, right: true) + pad(grouped(t.bitRate), 14, right: true) + "\n"
            }
        }
        out += "\nCRC errors: \(r.crcErrors.count)\n"
        for e in r.crcErrors { out += "  packet \(e.packetIndex)  PID \(e.pid.hex)  table_id \(e.tableID)\n" }
        out += "continuity errors: \(r.continuityErrors.count)\n"
        for e in r.continuityErrors {
            let what = e.missingPackets.map { "\($0) packet(s) missing" } ?? e.kind.replacingOccurrences(of: "_", with: " ")
            out += "  packet \(e.packetIndex)  PID \(e.pid.hex)  \(what)\n"
        }
        if !r.malformedSections.isEmpty {
            out += "malformed sections: \(r.malformedSections.count)\n"
            for m in r.malformedSections { out += "  packet \(m.packetIndex)  PID \(m.pid.hex)  \(m.reason)\n" }
        }
        return out
    }

    static func grouped(_ value: Double?) -> String {
        guard let value else { return "-" }
        let digits = String(Int(value.rounded()))
        var out = ""
        for (i, c) in digits.reversed().enumerated() {
            if i > 0 && i % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return String(out.reversed())
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        guard text.count < width else { return text + " " }
        let fill = String(repeating: " ", count: width - text.count)
        return right ? fill + text : text + fill
    }
}

/// A failure the user can act on, printed as it is (exit status 1).
struct AnalyzeFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
