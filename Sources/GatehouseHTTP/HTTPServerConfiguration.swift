import Foundation
import GatehouseCore

/// Where the server listens: an IP literal and a port. Host names are not resolved here:
/// a listening address is deployment configuration and should not depend on DNS.
public struct HTTPServerAddress: Sendable, Hashable, CustomStringConvertible {
    /// An IPv4 (`127.0.0.1`, `0.0.0.0`) or IPv6 (`::1`, `::`) literal, without brackets.
    public var host: String
    /// 0 asks the kernel for a free port; the server reports the real one once started.
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var isIPv6: Bool { host.contains(":") }

    /// `HOST:PORT`, with brackets around an IPv6 host.
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `HOST:PORT`, `[IPV6]:PORT`; `localhost` means 127.0.0.1.
    /// - Throws: `GatehouseError.configuration` saying what is wrong with `text`.
    public static func parse(_ text: String) throws(GatehouseError) -> HTTPServerAddress {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw GatehouseError(.configuration, "address '\(text)': expected [IPV6]:PORT")
            }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), text.firstIndex(of: ":") == colon else {
                throw GatehouseError(.configuration, "address '\(text)': expected HOST:PORT (IPv6 as [::1]:PORT)")
            }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard let port = Int(portPart), (0...65535).contains(port) else {
            throw GatehouseError(.configuration, "address '\(text)': the port must be a number from 0 to 65535")
        }
        var host = String(hostPart)
        if host == "localhost" { host = "127.0.0.1" }
        guard Self.isIPLiteral(host) else {
            throw GatehouseError(.configuration, "address '\(text)': the host must be an IP address literal")
        }
        return HTTPServerAddress(host: host, port: port)
    }

    static func isIPLiteral(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}

/// Everything the HTTP server needs before it opens a socket. Validated once by
/// `validate()` (called by `HTTPServer.start()`) so errors name the setting.
public struct HTTPServerConfiguration: Sendable {
    /// Certificate and private key, both PEM text, for HTTPS.
    public struct TLS: Sendable {
        public var certificatePEM: String
        public var privateKeyPEM: String
        public init(certificatePEM: String, privateKeyPEM: String) {
            self.certificatePEM = certificatePEM
            self.privateKeyPEM = privateKeyPEM
        }

        /// Reads both PEM files now, so a missing file fails at start-up, naming the path.
        /// - Throws: `GatehouseError.configuration`.
        public static func files(certificate: String, privateKey: String) throws(GatehouseError) -> TLS {
            func read(_ path: String, _ what: String) throws(GatehouseError) -> String {
                guard let data = FileManager.default.contents(atPath: path),
                    let text = String(data: data, encoding: .utf8)
                else { throw GatehouseError(.configuration, "cannot read the TLS \(what) file \(path)") }
                return text
            }
            return TLS(certificatePEM: try read(certificate, "certificate"), privateKeyPEM: try read(privateKey, "key"))
        }
    }

    /// Where to listen. Default `127.0.0.1:8080` (loopback: exposing the API is a deliberate act).
    public var address = HTTPServerAddress(host: "127.0.0.1", port: 8080)
    /// Largest request body accepted, in bytes; larger ones get 413. Default 65536: every
    /// Gatehouse request is a small JSON document.
    public var maximumBodySize = 65536
    /// Most connections open at once (across all threads); further clients wait in the
    /// kernel's listen backlog until one closes. Default 256.
    public var connectionLimit = 256
    /// Seconds a connection may stay idle (including keep-alive) before it is closed. Default 30.
    public var connectionTimeoutSeconds = 30
    /// Worker threads, each with its own epoll loop; handlers run on them. Default: four
    /// per active processor core, at most 64. Reads block on the database briefly; writes
    /// answer later (`DeferredResponse`) and hold no thread while their commit is pending.
    /// On 2 cores 32 threads served fewer device reads than 8 (thread switches): see
    /// docs/benchmarks-api.md.
    public var threadCount = min(64, 4 * ProcessInfo.processInfo.activeProcessorCount)
    /// How long `shutdown()` waits for requests in flight before closing connections. Default 5 s.
    public var shutdownGracePeriodSeconds = 5.0
    /// HTTPS when set. Default nil (plain HTTP; terminate TLS here or in a proxy).
    public var tls: TLS?

    public init(address: HTTPServerAddress = HTTPServerAddress(host: "127.0.0.1", port: 8080)) {
        self.address = address
    }

    /// Whether this libmicrohttpd was built with TLS (GnuTLS). Debian 12's is.
    public static var isTLSAvailable: Bool { MHDDaemon.isTLSSupported }

    /// Reads `GATEHOUSE_HTTP_ADDR`, `GATEHOUSE_HTTP_MAX_BODY_BYTES`, `GATEHOUSE_HTTP_CONNECTION_LIMIT`,
    /// `GATEHOUSE_HTTP_TIMEOUT` (seconds), `GATEHOUSE_HTTP_THREADS`, `GATEHOUSE_HTTP_SHUTDOWN_GRACE`
    /// (seconds), `GATEHOUSE_HTTP_TLS_CERT` and `GATEHOUSE_HTTP_TLS_KEY` (PEM file paths, both or neither).
    /// - Throws: `GatehouseError.configuration` naming the setting.
    public static func load(from source: ConfigSource) throws(GatehouseError) -> HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration()
        do {
            configuration.address = try HTTPServerAddress.parse(
                source.string("GATEHOUSE_HTTP_ADDR", default: "127.0.0.1:8080"))
        } catch {
            throw GatehouseError(.configuration, "GATEHOUSE_HTTP_ADDR: \(error.message)")
        }
        do {
            configuration.maximumBodySize = try source.int(
                "GATEHOUSE_HTTP_MAX_BODY_BYTES", default: 65536,
                in: 1...(64 << 20))
            configuration.connectionLimit = try source.int(
                "GATEHOUSE_HTTP_CONNECTION_LIMIT", default: 256,
                in: 1...65536)
            configuration.connectionTimeoutSeconds = try source.int(
                "GATEHOUSE_HTTP_TIMEOUT", default: 30,
                in: 0...86400)
            // Unset, the thread count stays within a lowered connection limit (MHD gives each
            // thread a share of the limit); set, `validate` names the conflict.
            configuration.threadCount = try source.int(
                "GATEHOUSE_HTTP_THREADS", default: min(configuration.threadCount, configuration.connectionLimit),
                in: 1...256)
            configuration.shutdownGracePeriodSeconds = try source.seconds("GATEHOUSE_HTTP_SHUTDOWN_GRACE", default: 5)
        } catch let error as GatehouseError {
            throw error
        } catch {
            throw GatehouseError(.configuration, "HTTP settings: \(error)")
        }
        switch (source.string("GATEHOUSE_HTTP_TLS_CERT"), source.string("GATEHOUSE_HTTP_TLS_KEY")) {
        case (nil, nil): break
        case (let certificate?, let key?): configuration.tls = try .files(certificate: certificate, privateKey: key)
        default:
            throw GatehouseError(
                .configuration, "GATEHOUSE_HTTP_TLS_CERT and GATEHOUSE_HTTP_TLS_KEY must be set together")
        }
        try configuration.validate()
        return configuration
    }

    /// Checks the values against each other and against what libmicrohttpd can do.
    /// - Throws: `GatehouseError.configuration` naming the setting.
    public func validate() throws(GatehouseError) {
        guard HTTPServerAddress.isIPLiteral(address.host), (0...65535).contains(address.port) else {
            throw GatehouseError(.configuration, "GATEHOUSE_HTTP_ADDR=\(address): expected an IP literal and a port")
        }
        guard maximumBodySize >= 1 else {
            throw GatehouseError(.configuration, "GATEHOUSE_HTTP_MAX_BODY_BYTES must be at least 1")
        }
        guard threadCount >= 1 else {
            throw GatehouseError(.configuration, "GATEHOUSE_HTTP_THREADS must be at least 1")
        }
        // MHD splits the limit between the threads; each needs at least one connection.
        guard connectionLimit >= threadCount else {
            throw GatehouseError(
                .configuration,
                "GATEHOUSE_HTTP_CONNECTION_LIMIT=\(connectionLimit) must be at least "
                    + "GATEHOUSE_HTTP_THREADS=\(threadCount)")
        }
        guard connectionTimeoutSeconds >= 0 else {
            throw GatehouseError(.configuration, "GATEHOUSE_HTTP_TIMEOUT must be zero (no timeout) or more")
        }
        if let tls {
            guard Self.isTLSAvailable else {
                throw GatehouseError(
                    .configuration,
                    "GATEHOUSE_HTTP_TLS_CERT is set but this libmicrohttpd was built without TLS; "
                        + "terminate TLS in a proxy")
            }
            guard tls.certificatePEM.contains("-----BEGIN"), tls.privateKeyPEM.contains("-----BEGIN") else {
                throw GatehouseError(
                    .configuration, "GATEHOUSE_HTTP_TLS_CERT/GATEHOUSE_HTTP_TLS_KEY: expected PEM text")
            }
        }
    }
}
