import Foundation
import GatehouseDomain
import GatehouseTestSupport

/// Strings that stress escaping: quotes, backslashes, slashes, every control character,
/// DEL, non-ASCII, non-BMP, combining marks, separators JavaScript cares about.
let trickyStrings: [String] = [
    "", "plain", "with \"quotes\"", #"back\slash"#, "a/b//c", "</script>", "tab\there", "line\nbreak", "cr\rlf\n",
    "\u{08}\u{0C}", "nul\u{0}byte", String((0..<0x20).map { Character(Unicode.Scalar(UInt8($0))) }), "del\u{7F}",
    "é", "e\u{301}", "Grüße ✓", "😀🇨🇭", "\u{10FFFF}", "\u{2028}\u{2029}", "\u{FEFF}bom", "\u{85}", "\\u0041",
    String(repeating: "x", count: 15), String(repeating: "y", count: 16), String(repeating: "é/\"", count: 40),
]

extension RandomNumberGenerator {
    /// A random string drawn from pieces that need escaping and pieces that do not.
    mutating func string(maxPieces: Int = 6) -> String {
        let pieces = [
            "a", "Z", "0", " ", "-", "_", ":", ".", "\"", "\\", "/", "\n", "\r", "\t", "\u{1}", "\u{1F}", "\u{7F}", "é",
            "€", "😀", "\u{301}", "\u{0}", "\u{8}", "\u{C}", "abcdefghijklmnop",
        ]
        var out = ""
        for _ in 0..<Int.random(in: 0...maxPieces, using: &self) { out += pieces.randomElement(using: &self)! }
        return out
    }
}

/// Equality that also tells 0.0 from -0.0 (the parser must give Foundation's exact Double).
func isIdentical(_ a: JSONValue, _ b: JSONValue) -> Bool {
    switch (a, b) {
    case (.number(let x), .number(let y)): return x.bitPattern == y.bitPattern
    case (.array(let xs), .array(let ys)): return xs.count == ys.count && zip(xs, ys).allSatisfy(isIdentical)
    case (.object(let xs), .object(let ys)):
        return xs.count == ys.count && xs.allSatisfy { key, x in ys[key].map { isIdentical(x, $0) } ?? false }
    default: return a == b
    }
}
