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

/// ISO 8601 parsing and formatting in UTC with millisecond precision.
public enum ISO8601 {
    public static func parse(_ text: String) -> Date? {
        let plain = ISO8601DateFormatter()
        plain.formatOptions = [.withInternetDateTime]
        if let date = plain.date(from: text) { return date }
        let fractional = ISO8601DateFormatter()
        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return fractional.date(from: text)
    }

    public static func format(_ millis: Millis) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }

    public static func nowMillis() -> Millis { Millis((Date().timeIntervalSince1970 * 1000).rounded()) }
}
