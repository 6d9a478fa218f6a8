import Foundation

/// Why bytes are not the JSON this module reads. Internal: `JSONValue.parseObject` turns it
/// into a `ValidationError` on field `body`; `Command.decode` falls back to `JSONDecoder`.
enum JSONSyntaxError: Error, Equatable {
    /// Not RFC 8259 JSON (or, for the command reader, not the shape `Command.encoded()` writes).
    case invalid
    /// Arrays and objects nest deeper than `JSONScanner.maximumDepth`.
    case tooDeep
    /// A well-formed document in which this key appears twice in one object.
    case duplicateKey(String)
}

/// A strict RFC 8259 reader over UTF-8 bytes.
///
/// Hand-written because the request path parsed every body through `JSONDecoder` and a
/// `Decodable` init that tried five types in turn, about 8% of the server's CPU per write.
/// What it accepts, and how that compares with the `JSONDecoder` it replaced:
/// - one value, optionally surrounded by the four JSON whitespace bytes; anything after it
///   is refused (as before);
/// - no trailing commas (`[1,]` and `{"a":1,}` were accepted by `JSONDecoder`);
/// - numbers exactly per the grammar (no `01`, `1.`, `.5`, `+1`, `NaN`), converted with the
///   same correctly rounded conversion as Foundation; like Foundation, a number that
///   overflows to infinity or rounds a non-zero value to zero is refused (`0e1` … `0e9`,
///   valid JSON that Foundation refused while taking `0e0` and `0e12`, now read as 0);
/// - strings without unescaped control characters, escapes `\" \\ \/ \b \f \n \r \t \uXXXX`,
///   surrogate pairs joined, a lone surrogate refused (as before);
/// - at most `maximumDepth` nested arrays and objects (Foundation allowed 512).
///
/// - Important: the bytes must already be valid UTF-8 (`UTF8Validation.isValid`): string
///   contents are copied without a second check.
struct JSONScanner {
    /// Deep enough for any request this API takes (they nest two levels), shallow enough
    /// that the recursive reader's stack use stays small.
    static let maximumDepth = 64

    let bytes: UnsafeBufferPointer<UInt8>
    var index: Int
    /// Reused for strings with escapes, so each such string costs one allocation.
    private var scratch: [UInt8] = []
    /// The first key seen twice in one object, reported once the document is known to be
    /// well-formed (a syntax error takes precedence, as it did before).
    private(set) var firstDuplicateKey: String?

    init(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    var isAtEnd: Bool { index >= bytes.count }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case ASCII.space, ASCII.tab, ASCII.lineFeed, ASCII.carriageReturn: index += 1
            default: return
            }
        }
    }

    /// The byte at the cursor after whitespace, not consumed; nil at the end.
    mutating func peekSignificant() -> UInt8? {
        skipWhitespace()
        return index < bytes.count ? bytes[index] : nil
    }

    /// Consumes `byte` after any whitespace.
    mutating func expect(_ byte: UInt8) throws(JSONSyntaxError) {
        guard peekSignificant() == byte else { throw .invalid }
        index += 1
    }

    // MARK: Values

    /// Reads one value at any nesting `depth` (0 for the top level).
    mutating func readValue(depth: Int = 0) throws(JSONSyntaxError) -> JSONValue {
        guard let byte = peekSignificant() else { throw .invalid }
        switch byte {
        case ASCII.quote: return .string(try readString())
        case ASCII.openBrace: return .object(try readObject(depth: depth + 1))
        case ASCII.openBracket: return .array(try readArray(depth: depth + 1))
        case ASCII.t:
            try readLiteral("true")
            return .bool(true)
        case ASCII.f:
            try readLiteral("false")
            return .bool(false)
        case ASCII.n:
            try readLiteral("null")
            return .null
        default: return .number(try readNumber())
        }
    }

    private mutating func readObject(depth: Int) throws(JSONSyntaxError) -> [String: JSONValue] {
        guard depth <= Self.maximumDepth else { throw .tooDeep }
        index += 1  // {
        var fields: [String: JSONValue] = [:]
        if peekSignificant() == ASCII.closeBrace {
            index += 1
            return fields
        }
        while true {
            guard peekSignificant() == ASCII.quote else { throw .invalid }
            let key = try readString()
            try expect(ASCII.colon)
            let value = try readValue(depth: depth)
            if fields.updateValue(value, forKey: key) != nil, firstDuplicateKey == nil { firstDuplicateKey = key }
            switch peekSignificant() {
            case ASCII.comma: index += 1
            case ASCII.closeBrace:
                index += 1
                return fields
            default: throw .invalid
            }
        }
    }

    private mutating func readArray(depth: Int) throws(JSONSyntaxError) -> [JSONValue] {
        guard depth <= Self.maximumDepth else { throw .tooDeep }
        index += 1  // [
        var items: [JSONValue] = []
        if peekSignificant() == ASCII.closeBracket {
            index += 1
            return items
        }
        while true {
            items.append(try readValue(depth: depth))
            switch peekSignificant() {
            case ASCII.comma: index += 1
            case ASCII.closeBracket:
                index += 1
                return items
            default: throw .invalid
            }
        }
    }

    mutating func readLiteral(_ word: StaticString) throws(JSONSyntaxError) {
        let count = word.utf8CodeUnitCount
        guard bytes.count - index >= count else { throw .invalid }
        for k in 0..<count where bytes[index + k] != word.utf8Start[k] { throw .invalid }
        index += count
    }

    // MARK: Strings

    /// Reads the string whose opening quote is at the cursor.
    mutating func readString() throws(JSONSyntaxError) -> String {
        index += 1  // "
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == ASCII.quote {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                index += 1
                return text
            }
            if byte == ASCII.backslash { return try readEscapedString(from: start) }
            if byte < 0x20 { throw .invalid }
            index += 1
        }
        throw .invalid
    }

    /// Reads the string whose opening quote is at the cursor and returns its bytes, which
    /// must contain no escape (the command reader's keys and enum names never do).
    mutating func readUnescapedString() throws(JSONSyntaxError) -> UnsafeBufferPointer<UInt8> {
        guard peekSignificant() == ASCII.quote else { throw .invalid }
        index += 1
        let start = index
        while index < bytes.count {
            let byte = bytes[index]
            if byte == ASCII.quote {
                index += 1
                return UnsafeBufferPointer(rebasing: bytes[start..<(index - 1)])
            }
            if byte == ASCII.backslash || byte < 0x20 { throw .invalid }
            index += 1
        }
        throw .invalid
    }

    /// The slow half of `readString`: the cursor is on the first backslash.
    private mutating func readEscapedString(from start: Int) throws(JSONSyntaxError) -> String {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case ASCII.quote:
                index += 1
                return String(decoding: scratch, as: UTF8.self)
            case ASCII.backslash:
                index += 1
                guard index < bytes.count else { throw .invalid }
                let escape = bytes[index]
                index += 1
                switch escape {
                case ASCII.quote, ASCII.backslash, ASCII.slash: scratch.append(escape)
                case ASCII.b: scratch.append(0x08)
                case ASCII.f: scratch.append(0x0C)
                case ASCII.n: scratch.append(ASCII.lineFeed)
                case ASCII.r: scratch.append(ASCII.carriageReturn)
                case ASCII.t: scratch.append(ASCII.tab)
                case ASCII.u: appendUTF8(try readEscapedScalar())
                default: throw .invalid
                }
            case 0..<0x20:
                throw .invalid
            default:
                scratch.append(byte)
                index += 1
            }
        }
        throw .invalid
    }

    /// The scalar of a `\uXXXX` escape whose `\u` is consumed, joining a surrogate pair.
    /// - Throws: `.invalid` for a lone high or low surrogate.
    private mutating func readEscapedScalar() throws(JSONSyntaxError) -> UInt32 {
        let unit = try readHex4()
        switch unit {
        case 0xD800...0xDBFF:
            guard bytes.count - index >= 2, bytes[index] == ASCII.backslash, bytes[index + 1] == ASCII.u else {
                throw .invalid
            }
            index += 2
            let low = try readHex4()
            guard (0xDC00...0xDFFF).contains(low) else { throw .invalid }
            return 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
        case 0xDC00...0xDFFF:
            throw .invalid
        default:
            return unit
        }
    }

    private mutating func readHex4() throws(JSONSyntaxError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw .invalid }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case ASCII.zero...ASCII.nine: digit = byte - ASCII.zero
            case ASCII.A...ASCII.F: digit = byte - ASCII.A + 10
            case ASCII.a...ASCII.f: digit = byte - ASCII.a + 10
            default: throw .invalid
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func appendUTF8(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            scratch.append(UInt8(scalar))
        case 0x80..<0x800:
            scratch.append(UInt8(0xC0 | scalar >> 6))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            scratch.append(UInt8(0xE0 | scalar >> 12))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        default:
            scratch.append(UInt8(0xF0 | scalar >> 18))
            scratch.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            scratch.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            scratch.append(UInt8(0x80 | scalar & 0x3F))
        }
    }

    // MARK: Numbers

    /// Reads a number per the RFC 8259 grammar.
    ///
    /// Whole numbers of up to 15 digits are exact in a `Double` and are converted directly;
    /// everything else goes through `Double(String)` (correctly rounded, as Foundation's
    /// conversion is). Like `JSONDecoder`, refuses values that overflow to infinity and
    /// non-zero values that round to zero (`1e-400`).
    mutating func readNumber() throws(JSONSyntaxError) -> Double {
        let start = index
        let isNegative = bytes[index] == ASCII.minus
        if isNegative { index += 1 }
        var mantissa: UInt64 = 0
        var digitCount = 0
        var hasNonZeroDigit = false
        guard index < bytes.count else { throw .invalid }
        switch bytes[index] {
        case ASCII.zero:
            index += 1
        case ASCII.one...ASCII.nine:
            hasNonZeroDigit = true
            while index < bytes.count, case let digit = bytes[index] &- ASCII.zero, digit < 10 {
                mantissa = mantissa &* 10 &+ UInt64(digit)
                digitCount += 1
                index += 1
            }
        default:
            throw .invalid
        }
        var isWhole = true
        if index < bytes.count, bytes[index] == ASCII.period {
            isWhole = false
            index += 1
            let fractionStart = index
            while index < bytes.count, case let digit = bytes[index] &- ASCII.zero, digit < 10 {
                if digit != 0 { hasNonZeroDigit = true }
                index += 1
            }
            guard index > fractionStart else { throw .invalid }
        }
        if index < bytes.count, bytes[index] | 0x20 == ASCII.e {
            isWhole = false
            index += 1
            if index < bytes.count, bytes[index] == ASCII.plus || bytes[index] == ASCII.minus { index += 1 }
            let exponentStart = index
            while index < bytes.count, bytes[index] &- ASCII.zero < 10 { index += 1 }
            guard index > exponentStart else { throw .invalid }
        }
        if isWhole && digitCount <= 15 {
            let magnitude = Double(mantissa)
            return isNegative ? -magnitude : magnitude
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let value = Double(text), value.isFinite, value != 0 || !hasNonZeroDigit else { throw .invalid }
        return value
    }

    /// Reads a whole number in the form `JSONEncoder` writes integers: no fraction, no
    /// exponent, no `-0`, within `Int64`. Anything else throws (the command reader then
    /// leaves the document to `JSONDecoder`).
    mutating func readInteger() throws(JSONSyntaxError) -> Int64 {
        guard let first = peekSignificant() else { throw .invalid }
        let isNegative = first == ASCII.minus
        if isNegative { index += 1 }
        guard index < bytes.count else { throw .invalid }
        var value: Int64 = 0
        if bytes[index] == ASCII.zero {
            guard !isNegative else { throw .invalid }
            index += 1
        } else {
            let start = index
            while index < bytes.count, case let digit = bytes[index] &- ASCII.zero, digit < 10 {
                // Accumulate on the sign's side so Int64.min is reachable.
                let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
                let (next, o2) = isNegative
                    ? shifted.subtractingReportingOverflow(Int64(digit)) : shifted.addingReportingOverflow(Int64(digit))
                guard !o1, !o2 else { throw .invalid }
                value = next
                index += 1
            }
            guard index > start else { throw .invalid }
        }
        if index < bytes.count {
            switch bytes[index] {
            case ASCII.zero...ASCII.nine, ASCII.period, ASCII.e, ASCII.E: throw .invalid
            default: break
            }
        }
        return value
    }
}

/// The bytes the JSON reader and writers name.
enum ASCII {
    static let tab: UInt8 = 0x09
    static let lineFeed: UInt8 = 0x0A
    static let carriageReturn: UInt8 = 0x0D
    static let space: UInt8 = 0x20
    static let quote: UInt8 = 0x22
    static let plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C
    static let minus: UInt8 = 0x2D
    static let period: UInt8 = 0x2E
    static let slash: UInt8 = 0x2F
    static let zero: UInt8 = 0x30
    static let one: UInt8 = 0x31
    static let nine: UInt8 = 0x39
    static let colon: UInt8 = 0x3A
    static let A: UInt8 = 0x41
    static let E: UInt8 = 0x45
    static let F: UInt8 = 0x46
    static let openBracket: UInt8 = 0x5B
    static let backslash: UInt8 = 0x5C
    static let closeBracket: UInt8 = 0x5D
    static let a: UInt8 = 0x61
    static let b: UInt8 = 0x62
    static let e: UInt8 = 0x65
    static let f: UInt8 = 0x66
    static let n: UInt8 = 0x6E
    static let r: UInt8 = 0x72
    static let t: UInt8 = 0x74
    static let u: UInt8 = 0x75
    static let openBrace: UInt8 = 0x7B
    static let closeBrace: UInt8 = 0x7D
}

/// Well-formed UTF-8 (Unicode Table 3-7): what `String(validating:as:)` accepts, without
/// building the String.
enum UTF8Validation {
    static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var i = 0
        while i < count {
            // Eight ASCII bytes at a time: request bodies are almost all ASCII.
            if count - i >= 8, UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                i += 8
                continue
            }
            let lead = base[i]
            if lead < 0x80 {
                i += 1
                continue
            }
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                low = 0xA0  // no overlong forms
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                high = 0x9F  // no surrogates
            case 0xF0:
                length = 4
                low = 0x90  // no overlong forms
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                high = 0x8F  // nothing above U+10FFFF
            default: return false
            }
            guard count - i >= length, (low...high).contains(base[i + 1]) else { return false }
            for k in 2..<length where base[i + k] & 0xC0 != 0x80 { return false }
            i += length
        }
        return true
    }
}
