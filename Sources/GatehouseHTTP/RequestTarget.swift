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
        // Scanning UTF-8 bytes (the separators are ASCII) instead of Characters: this runs
        // for every request.
        // Fragments never reach a server, but a sloppy client may send one: it ends the
        // target wherever it is (RFC 3986 §3.5), so `?` after `#` starts no query.
        raw = Self.beforeFragment(raw)
        let query: Substring
        let path: Substring
        if let mark = raw.utf8.firstIndex(of: UInt8(ascii: "?")) {
            path = raw[..<mark]
            query = raw[raw.utf8.index(after: mark)...]
        } else {
            path = raw[...]
            query = ""
        }
        let pathOnly = path
        rawPath = pathOnly.isEmpty ? "/" : String(pathOnly)
        segments = pathOnly.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map {
            let segment = Substring($0)
            return PercentDecoding.decode(segment, plusIsSpace: false) ?? String(segment)
        }
        var items: [(name: String, value: String)] = []
        for pairBytes in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let pair = Substring(pairBytes)
            let name: Substring
            let value: Substring?
            if let equals = pair.utf8.firstIndex(of: UInt8(ascii: "=")) {
                name = pair[..<equals]
                value = pair[pair.utf8.index(after: equals)...]
            } else {
                name = pair
                value = nil
            }
            let decodedName = PercentDecoding.decode(name, plusIsSpace: true) ?? String(name)
            let decodedValue = value.map { PercentDecoding.decode($0, plusIsSpace: true) ?? String($0) } ?? ""
            items.append((decodedName, decodedValue))
        }
        queryItems = items
    }

    private static func beforeFragment(_ text: Substring) -> Substring {
        text.utf8.firstIndex(of: UInt8(ascii: "#")).map { text[..<$0] } ?? text
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
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else {
            return String(text)
        }
        let utf8 = Array(text.utf8)
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
