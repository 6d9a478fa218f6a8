import GatehouseCore

/// Where and how to reach a MariaDB (or MySQL) server.
///
/// Built from `mysql://user:password@host:port/database?option=value` (scheme `mariadb://`
/// works too). User and password are percent-decoded, so encode `@ : / ? # %` in them.
/// Options: `socket=/path/to/mysqld.sock` (connect over a unix socket; host is then
/// ignored), `pool=N` (`maxConnections`), `connect_timeout=S`.
///
/// - Important: `description`, `redactedURL` and every error message show the password as
///   `***`; keep it that way when logging the configuration.
public struct MariaDBConfiguration: Sendable, CustomStringConvertible, CustomReflectable {
    /// Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// Default 3306.
    public var port: Int = 3306
    public var user: String
    public var password: String
    public var database: String
    /// Unix socket path; when set the driver connects through it instead of TCP. Default none.
    public var unixSocket: String?
    /// Connections in the pool at most. Default 8.
    public var maxConnections: Int = 8
    /// Seconds to wait for a TCP connection and handshake. Default 5.
    public var connectTimeoutSeconds: Int = 5
    /// Seconds a read or write on the socket may block before the connection counts as lost.
    /// Default 30.
    public var ioTimeoutSeconds: Int = 30
    /// Prepared statements kept per connection. Default 64.
    public var statementCacheCapacity: Int = 64

    public init(host: String = "127.0.0.1", port: Int = 3306, user: String, password: String, database: String) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses a `mysql://` URL.
    /// - Throws: `GatehouseError.configuration` saying what is wrong; the message shows the
    ///   URL with its password replaced by `***` (or not at all when it cannot be split).
    public init(url: String) throws {
        func fail(_ why: String) -> GatehouseError {
            GatehouseError(.configuration, "database URL \(Self.redact(url)): \(why)")
        }
        let rest: Substring
        if url.hasPrefix("mysql://") {
            rest = url.dropFirst("mysql://".count)
        } else if url.hasPrefix("mariadb://") {
            rest = url.dropFirst("mariadb://".count)
        } else {
            throw fail("expected mysql://user:password@host:port/database")
        }
        // The last '@' ends the user information, so an unencoded '@' in a password still works.
        guard let at = rest.lastIndex(of: "@") else { throw fail("missing user (mysql://user:password@host/...)") }
        let userInfo = rest[..<at]
        var hostPart = rest[rest.index(after: at)...]
        var query: Substring = ""
        if let q = hostPart.firstIndex(of: "?") {
            query = hostPart[hostPart.index(after: q)...]
            hostPart = hostPart[..<q]
        }
        guard let slash = hostPart.firstIndex(of: "/") else { throw fail("missing /database") }
        let authority = hostPart[..<slash]
        let databasePart = hostPart[hostPart.index(after: slash)...]

        let userRaw: Substring
        let passwordRaw: Substring
        if let colon = userInfo.firstIndex(of: ":") {
            userRaw = userInfo[..<colon]
            passwordRaw = userInfo[userInfo.index(after: colon)...]
        } else {
            userRaw = userInfo
            passwordRaw = ""
        }
        guard let user = Self.percentDecode(userRaw), !user.isEmpty else {
            throw fail("the user is empty or badly encoded")
        }
        guard let password = Self.percentDecode(passwordRaw) else {
            throw fail("the password is badly percent-encoded")
        }
        guard let database = Self.percentDecode(databasePart), !database.isEmpty else {
            throw fail("the database name is empty or badly encoded")
        }

        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {  // [IPv6]:port
            guard let close = authority.firstIndex(of: "]") else { throw fail("unclosed [ in host") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw fail("bad host") }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        self.init(host: "127.0.0.1", port: 3306, user: user, password: password, database: database)
        if !host.isEmpty { self.host = String(host) }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { throw fail("port must be 1...65535") }
            self.port = port
        }
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            let value = parts.count > 1 ? Self.percentDecode(parts[1]) : nil
            switch key {
            case "socket":
                guard let value, !value.isEmpty else { throw fail("socket needs a path") }
                self.unixSocket = value
            case "pool":
                guard let value, let n = Int(value), (1...1000).contains(n) else { throw fail("pool must be 1...1000") }
                self.maxConnections = n
            case "connect_timeout":
                guard let value, let n = Int(value), (1...600).contains(n) else {
                    throw fail("connect_timeout must be 1...600 seconds")
                }
                self.connectTimeoutSeconds = n
            default:
                throw fail("unknown option \(key) (known: socket, pool, connect_timeout)")
            }
        }
    }

    /// The URL with the password shown as `***`.
    public var redactedURL: String {
        let hostPart = unixSocket.map { "localhost/\(database)?socket=\($0)" } ?? "\(host):\(port)/\(database)"
        return "mysql://\(user):***@\(hostPart)"
    }

    public var description: String { "MariaDBConfiguration(\(redactedURL), pool: \(maxConnections))" }

    /// `dump()` and debuggers show the redacted form, never the password field.
    public var customMirror: Mirror { Mirror(self, children: ["url": redactedURL, "maxConnections": maxConnections]) }

    /// Replaces the password of a URL-shaped string with `***`, whatever else is wrong with it.
    static func redact(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return "(not a URL)" }
        let rest = url[scheme.upperBound...]
        guard let at = rest.lastIndex(of: "@") else { return String(url[..<scheme.upperBound]) + rest }
        let userInfo = rest[..<at]
        let user = userInfo.split(separator: ":", maxSplits: 1).first ?? ""
        return String(url[..<scheme.upperBound]) + user + ":***" + rest[at...]
    }

    /// RFC 3986 percent-decoding as UTF-8; `nil` for a malformed escape or invalid UTF-8.
    static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                return nil
            }
            bytes.append(high << 4 | low)
        }
        return String(validating: bytes, as: UTF8.self)
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
