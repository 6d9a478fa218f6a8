import Foundation
import GatehouseCore

/// Writes JSON into a byte array, without the many small Strings that concatenation builds.
///
/// Two string escapings exist because two formats are frozen: `JSONValue.rendered` (API
/// responses and the idempotency digest, which must not change) and `JSONEncoder`'s (the
/// command bytes in the outbox and on the bus).
struct JSONByteWriter {
    enum Escaping {
        /// `JSONLine.quote`: `\"`, `\\`, `\n`, `\r`, `\t`, other controls as `\u00xx`.
        case line
        /// Foundation's `JSONEncoder`: as `line`, plus `\b`, `\f` and `\/` for a slash.
        case foundation
    }

    private(set) var bytes: [UInt8] = []

    init(capacity: Int) { bytes.reserveCapacity(capacity) }

    mutating func append(_ byte: UInt8) { bytes.append(byte) }

    /// Appends ASCII text written in the source (keys, punctuation).
    mutating func append(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends a quoted string. Escaping looks at ASCII bytes only, so working on the UTF-8
    /// bytes gives the same output as walking the scalars.
    mutating func appendQuoted(_ string: String, _ escaping: Escaping) {
        guard escaping == .foundation else {
            JSONLine.appendQuoted(string, to: &bytes)  // the log lines' escaping, one implementation
            return
        }
        bytes.append(ASCII.quote)
        var string = string
        string.withUTF8 { utf8 in
            var runStart = 0
            for i in 0..<utf8.count {
                let byte = utf8[i]
                guard byte < 0x20 || byte == ASCII.quote || byte == ASCII.backslash || byte == ASCII.slash
                else { continue }
                if runStart < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
                runStart = i + 1
                appendEscape(byte)
            }
            if runStart < utf8.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        bytes.append(ASCII.quote)
    }

    /// `JSONEncoder`'s escape for `byte`.
    private mutating func appendEscape(_ byte: UInt8) {
        bytes.append(ASCII.backslash)
        switch byte {
        case ASCII.quote, ASCII.backslash, ASCII.slash: bytes.append(byte)
        case ASCII.lineFeed: bytes.append(ASCII.n)
        case ASCII.carriageReturn: bytes.append(ASCII.r)
        case ASCII.tab: bytes.append(ASCII.t)
        case 0x08: bytes.append(ASCII.b)
        case 0x0C: bytes.append(ASCII.f)
        default:
            // Lowercase hex, as JSONEncoder writes it.
            let hex: StaticString = "0123456789abcdef"
            bytes.append(ASCII.u)
            bytes.append(ASCII.zero)
            bytes.append(ASCII.zero)
            bytes.append(hex.utf8Start[Int(byte >> 4)])
            bytes.append(hex.utf8Start[Int(byte & 0x0F)])
        }
    }

    /// Appends a decimal integer as `String(value)` writes it.
    mutating func appendInteger<T: BinaryInteger>(_ value: T) {
        if value < 0 { bytes.append(ASCII.minus) }
        var magnitude = UInt64(value.magnitude)
        let start = bytes.count
        repeat {
            bytes.append(ASCII.zero + UInt8(magnitude % 10))
            magnitude /= 10
        } while magnitude > 0
        bytes[start...].reverse()
    }

    /// Appends `data` as a quoted standard Base64 string with padding, as `JSONEncoder`'s
    /// default `.base64` strategy writes it (its slashes escaped as `\/`).
    mutating func appendQuotedBase64(_ data: Data) {
        let alphabet: StaticString = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        let table = alphabet.utf8Start
        func put(_ sextet: UInt32) {
            let symbol = table[Int(sextet & 0x3F)]
            if symbol == ASCII.slash { bytes.append(ASCII.backslash) }
            bytes.append(symbol)
        }
        bytes.append(ASCII.quote)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var i = 0
            while raw.count - i >= 3 {
                let group = UInt32(raw[i]) << 16 | UInt32(raw[i + 1]) << 8 | UInt32(raw[i + 2])
                put(group >> 18)
                put(group >> 12)
                put(group >> 6)
                put(group)
                i += 3
            }
            switch raw.count - i {
            case 1:
                let group = UInt32(raw[i]) << 16
                put(group >> 18)
                put(group >> 12)
                bytes.append(0x3D)
                bytes.append(0x3D)
            case 2:
                let group = UInt32(raw[i]) << 16 | UInt32(raw[i + 1]) << 8
                put(group >> 18)
                put(group >> 12)
                put(group >> 6)
                bytes.append(0x3D)
            default: break
            }
        }
        bytes.append(ASCII.quote)
    }

    /// Appends `value` in the `JSONValue.rendered` format: compact, keys sorted by `String`'s
    /// `<`, whole numbers below 1e15 as integers and other numbers as `String(Double)`.
    mutating func appendRendered(_ value: JSONValue) {
        switch value {
        case .null: append("null")
        case .bool(let b): b ? append("true") : append("false")
        case .number(let n):
            if n.rounded() == n, abs(n) < 1e15 {
                appendInteger(Int64(n))
            } else {
                bytes.append(contentsOf: String(n).utf8)
            }
        case .string(let s): appendQuoted(s, .line)
        case .array(let items):
            bytes.append(ASCII.openBracket)
            for (i, item) in items.enumerated() {
                if i > 0 { bytes.append(ASCII.comma) }
                appendRendered(item)
            }
            bytes.append(ASCII.closeBracket)
        case .object(let fields):
            bytes.append(ASCII.openBrace)
            // Keys are unique (String equality), so sorting the pairs by key gives the
            // order of `keys.sorted()` without looking each value up again.
            for (i, field) in fields.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { bytes.append(ASCII.comma) }
                appendQuoted(field.key, .line)
                bytes.append(ASCII.colon)
                appendRendered(field.value)
            }
            bytes.append(ASCII.closeBrace)
        }
    }
}
