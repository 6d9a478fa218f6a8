import Foundation

/// Milliseconds since the Unix epoch, UTC: how every time is stored and carried.
public typealias Millis = Int64

/// Field-level checks shared by every endpoint and the worker.
public enum Validate {
    /// Device (smart card / set-top box) ids: 1–64 characters of `A–Z a–z 0–9 . _ : -`.
    /// Operators use chip ids, card numbers or MAC-like strings; this covers them all
    /// and keeps ids safe in logs, URLs and the EMM header.
    public static func deviceID(_ value: String, field: String = "device_id") throws(ValidationError) -> String {
        guard !value.isEmpty, value.utf8.count <= 64 else {
            throw ValidationError(field: field, "must be 1 to 64 characters")
        }
        for byte in value.utf8 {
            let ok = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == 0x2E || byte == 0x5F || byte == 0x3A || byte == 0x2D
            guard ok else { throw ValidationError(field: field, "may contain only letters, digits, '.', '_', ':' and '-'") }
        }
        return value
    }

    /// A product (package) id: 1–65535, as it travels in 16 bits in the EMM.
    public static func productID(_ value: Int64?, field: String = "product_id") throws(ValidationError) -> UInt16 {
        guard let value else { throw ValidationError(field: field, "is required") }
        guard (1...65535).contains(value) else { throw ValidationError(field: field, "must be from 1 to 65535") }
        return UInt16(value)
    }

    /// An AES key in hex: 32 digits (AES-128) or 64 digits (AES-256).
    /// - Important: the returned bytes are key material; the caller wipes them after use.
    ///   The error message never repeats the value.
    public static func hexKey(_ value: String, field: String = "key") throws(ValidationError) -> [UInt8] {
        let digits = Array(value.utf8)
        guard digits.count == 32 || digits.count == 64 else {
            throw ValidationError(field: field, "must be 32 or 64 hex digits (an AES-128 or AES-256 key)")
        }
        var out = [UInt8](repeating: 0, count: digits.count / 2)
        for i in 0..<out.count {
            guard let hi = nibble(digits[2 * i]), let lo = nibble(digits[2 * i + 1]) else {
                for j in 0..<out.count { out[j] = 0 }
                throw ValidationError(field: field, "must contain only hex digits 0-9, a-f")
            }
            out[i] = hi << 4 | lo
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }

    /// An ISO 8601 date-time with a zone (`2026-12-03T10:00:00Z`, `…+01:00`, fractional seconds allowed).
    public static func time(_ value: String?, field: String) throws(ValidationError) -> Millis? {
        guard let value else { return nil }
        guard let date = ISO8601.parse(value) else {
            throw ValidationError(field: field, "must be an ISO 8601 date-time with a zone, e.g. 2026-12-03T10:00:00Z")
        }
        let ms = (date.timeIntervalSince1970 * 1000).rounded()
        guard ms >= 0, ms < 253_402_300_800_000 else { throw ValidationError(field: field, "is out of range") }
        return Millis(ms)
    }
}

/// ISO 8601 / RFC 3339 parsing and formatting in UTC with millisecond precision.
///
/// Hand-written on purpose: Foundation's `ISO8601DateFormatter` builds an ICU formatter on
/// every use (about half the CPU time of a request in the API benchmarks) and is lenient
/// (`2030-02-30` became 2 March). This accepts exactly `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`
/// with a real calendar date, and formats as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
public enum ISO8601 {
    public static func parse(_ text: String) -> Date? {
        let b = Array(text.utf8)
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var value = 0
            for k in i..<(i + n) {
                guard b[k] >= 0x30, b[k] <= 0x39 else { return nil }
                value = value * 10 + Int(b[k] - 0x30)
            }
            i += n
            return value
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(0x2D), let month = digits(2), expect(0x2D), let day = digits(2),
            i < b.count, b[i] == 0x54 || b[i] == 0x74
        else { return nil }
        i += 1
        guard let hour = digits(2), expect(0x3A), let minute = digits(2), expect(0x3A), let second = digits(2) else {
            return nil
        }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month), hour < 24, minute < 60, second < 60
        else { return nil }
        var fraction = 0.0
        if i < b.count, b[i] == 0x2E {
            i += 1
            var scale = 0.1
            let start = i
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                fraction += Double(b[i] - 0x30) * scale
                scale /= 10
                i += 1
            }
            guard i > start, i - start <= 9 else { return nil }
        }
        var offset = 0
        guard i < b.count else { return nil }
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D {
            let sign = b[i] == 0x2D ? -1 : 1
            i += 1
            guard let oh = digits(2), expect(0x3A), let om = digits(2), oh < 24, om < 60 else { return nil }
            offset = sign * (oh * 3600 + om * 60)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let seconds = daysFromCivil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    public static func format(_ millis: Millis) -> String {
        let days = millis >= 0 ? millis / 86_400_000 : (millis - 86_399_999) / 86_400_000
        let (year, month, day) = civilFromDays(Int(days))
        guard (0...9999).contains(year) else {
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
        }
        let rest = Int(millis - days * 86_400_000)
        var out = [UInt8](repeating: 0, count: 24)
        func put(_ value: Int, _ at: Int, _ width: Int) {
            var v = value
            for k in stride(from: at + width - 1, through: at, by: -1) {
                out[k] = UInt8(0x30 + v % 10)
                v /= 10
            }
        }
        put(year, 0, 4); out[4] = 0x2D; put(month, 5, 2); out[7] = 0x2D; put(day, 8, 2); out[10] = 0x54
        put(rest / 3_600_000, 11, 2); out[13] = 0x3A; put(rest / 60_000 % 60, 14, 2); out[16] = 0x3A
        put(rest / 1000 % 60, 17, 2); out[19] = 0x2E; put(rest % 1000, 20, 3); out[23] = 0x5A
        return String(decoding: out, as: UTF8.self)
    }

    public static func nowMillis() -> Millis { Millis((Date().timeIntervalSince1970 * 1000).rounded()) }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}

/// Request ids: UUID version 7 (RFC 9562), lowercase.
///
/// The first 48 bits are the Unix time in milliseconds, the other 74 free bits random, so
/// ids are unique and unguessable like version 4, but consecutive requests land next to
/// each other in the `requests` primary key (SQLite's index, InnoDB's clustered index)
/// instead of on a random page each: fewer pages written per commit.
public enum RequestIdentifier {
    public static func make(now: Millis) -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        let timestamp = UInt64(max(0, now)) & 0xFFFF_FFFF_FFFF
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: timestamp >> (40 - 8 * UInt64(index))) }
        let high: UInt64 = generator.next()
        let low: UInt64 = generator.next()
        for index in 6..<8 { bytes[index] = UInt8(truncatingIfNeeded: high >> (8 * UInt64(index - 6))) }
        for index in 8..<16 { bytes[index] = UInt8(truncatingIfNeeded: low >> (8 * UInt64(index - 8))) }
        bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // variant 10
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append(UInt8(ascii: "-")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
