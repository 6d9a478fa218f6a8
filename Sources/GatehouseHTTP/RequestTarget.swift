/// The request target (`/path?query`) split and decoded by Gatehouse itself.
///
/// libmicrohttpd would decode the path for us, but it decodes `%2F` into `/` before
/// routing, so an identifier containing a slash would change the route. We take the raw
/// target from MHD's URI callback and decode each path segment after splitting.
struct RequestTarget: Sendable, Equatable {
    /// The raw path, still percent-encoded, without the query (safe to log).
    var rawPath: String
    /// The decoded path segments (`/devices/a%2Fb` gives `["devices", "a/b"]`).
    var segments: [String]
    /// Query items in order, names and values decoded (`+` is a space, as in forms).
    var queryItems: [(name: String, value: String)]

    init(raw target: String) {
        // Absolute form (`http://host/path`, RFC 9112 §3.2.2) is what proxies send; only
        // the path and query matter here.
        var raw = target[...]
        if raw.first != "/", let schemeEnd = raw.range(of: "://") {
            let afterAuthority = raw[schemeEnd.upperBound...]
            raw = afterAuthority.firstIndex(where: { $0 == "/" || $0 == "?" }).map { afterAuthority[$0...] } ?? "/"
        }
        let query: Substring
        let path: Substring
        if let mark = raw.firstIndex(of: "?") {
            path = raw[..<mark]
            query = raw[raw.index(after: mark)...]
        } else {
            path = raw[...]
            query = ""
        }
        // Fragments never reach a server, but a sloppy client may send one.
        let pathOnly = path.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        rawPath = pathOnly.isEmpty ? "/" : String(pathOnly)
        segments = pathOnly.split(separator: "/", omittingEmptySubsequences: true).map {
            PercentDecoding.decode($0, plusIsSpace: false) ?? String($0)
        }
        var items: [(name: String, value: String)] = []
        let queryOnly = query.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        for pair in queryOnly.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = PercentDecoding.decode(parts[0], plusIsSpace: true) ?? String(parts[0])
            let value = parts.count > 1 ? (PercentDecoding.decode(parts[1], plusIsSpace: true) ?? String(parts[1])) : ""
            items.append((name, value))
        }
        queryItems = items
    }

    static func == (lhs: RequestTarget, rhs: RequestTarget) -> Bool {
        lhs.rawPath == rhs.rawPath && lhs.segments == rhs.segments
            && lhs.queryItems.map { [$0.name, $0.value] } == rhs.queryItems.map { [$0.name, $0.value] }
    }
}

/// RFC 3986 percent-decoding.
enum PercentDecoding {
    /// Decodes `%HH` escapes (and `+` as a space when asked); nil when an escape is
    /// malformed or the bytes are not UTF-8, so the caller can keep the raw text.
    static func decode(_ text: Substring, plusIsSpace: Bool) -> String? {
        let utf8 = Array(text.utf8)
        guard utf8.contains(UInt8(ascii: "%")) || (plusIsSpace && utf8.contains(UInt8(ascii: "+"))) else {
            return String(text)
        }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                guard index + 2 < utf8.count, let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2])
                else { return nil }
                out.append(high << 4 | low)
                index += 3
            } else {
                out.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                index += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
