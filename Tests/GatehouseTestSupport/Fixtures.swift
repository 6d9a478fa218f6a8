import Foundation

/// Helpers shared by the test targets: fixture paths and hex conversion.
public enum Fixtures {
    /// The repository root (two levels above this file's `Tests/GatehouseTestSupport`).
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared/samples` next to the checkout, or `GATEHOUSE_SAMPLES_DIR` when set.
    public static var samplesDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["GATEHOUSE_SAMPLES_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        return repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/samples")
    }

    /// The bytes of a sample capture.
    public static func sample(_ name: String) throws -> [UInt8] {
        let url = samplesDirectory.appendingPathComponent(name)
        return Array(try Data(contentsOf: url))
    }

    /// Decodes hex, ignoring white space; traps on a malformed literal (a test bug).
    public static func hex(_ text: String) -> [UInt8] {
        let digits = text.filter { !$0.isWhitespace }
        precondition(digits.count % 2 == 0, "odd number of hex digits")
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var index = digits.startIndex
        while index < digits.endIndex {
            let next = digits.index(index, offsetBy: 2)
            out.append(UInt8(digits[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    public static func hexString(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { byte in
            let s = String(byte, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }
}
