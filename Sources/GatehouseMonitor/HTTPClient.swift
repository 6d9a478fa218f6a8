import Dispatch
import Foundation
import GatehouseCore

#if canImport(Glibc)
    import Glibc
#endif

/// An `http://host:port/path` URL. https is not supported: the Pushgateway and webhooks
/// of a head-end sit on the management LAN; put a TLS proxy in front if needed.
public struct HTTPURL: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    /// Path and query, starting with `/`.
    public var path: String

    public init(parsing text: String) throws {
        guard text.hasPrefix("http://") else {
            throw GatehouseError(.invalidInput, "URL \(text) must start with http://")
        }
        let rest = text.dropFirst("http://".count)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        var path = String(rest[slash...])
        if path.isEmpty { path = "/" }
        var hostPart = Substring(authority)
        var port: UInt16 = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw GatehouseError(.invalidInput, "URL \(text): unterminated IPv6 address")
            }
            hostPart = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let p = UInt16(after.dropFirst()) else {
                    throw GatehouseError(.invalidInput, "URL \(text): bad port")
                }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            guard let p = UInt16(authority[authority.index(after: colon)...]) else {
                throw GatehouseError(.invalidInput, "URL \(text): bad port")
            }
            port = p
        }
        guard !hostPart.isEmpty, !hostPart.contains("@") else {
            throw GatehouseError(.invalidInput, "URL \(text): no host (credentials in URLs are not supported)")
        }
        host = String(hostPart)
        self.port = port
        self.path = path
    }

    public init(host: String, port: UInt16, path: String) {
        self.host = host
        self.port = port
        self.path = path
    }

    /// The same server with another path.
    public func with(path: String) -> HTTPURL { HTTPURL(host: host, port: port, path: path) }

    public var description: String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)\(path)" }
}

public struct HTTPClientResponse: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A tiny HTTP/1.1 client (one request per connection, `Connection: close`) for the
/// Pushgateway and webhooks. Blocking socket calls run on a dispatch queue, never on the
/// cooperative pool; every call has a deadline.
public enum HTTPClient {
    /// Sends one request.
    /// - Throws: `GatehouseError(.io)` naming the call (connect, send, recv) or `.unavailable`
    ///   on a timeout; the status is returned as is (a 500 is not an error here).
    public static func send(
        _ method: String, _ url: HTTPURL, body: [UInt8] = [], contentType: String? = nil,
        timeout: Double
    ) async throws -> HTTPClientResponse {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        try sendBlocking(method, url, body: body, contentType: contentType, timeout: timeout)
                    })
            }
        }
    }

    /// `send`, retried with exponential back-off on transport errors and 5xx answers.
    /// - Returns: the last response (2xx, 4xx, or the last 5xx).
    /// - Throws: the last transport error when every attempt failed to connect or timed out.
    public static func sendWithRetries(
        _ method: String, _ url: HTTPURL, body: [UInt8] = [], contentType: String? = nil,
        timeout: Double, attempts: Int, backoff: Double, onRetry: @Sendable (Int, String) -> Void = { _, _ in }
    )
        async throws -> HTTPClientResponse
    {
        var delay = backoff
        var attempt = 1
        while true {
            do {
                let response = try await send(method, url, body: body, contentType: contentType, timeout: timeout)
                if response.status < 500 || attempt >= attempts { return response }
                onRetry(attempt, "HTTP \(response.status)")
            } catch {
                if attempt >= attempts { throw error }
                onRetry(attempt, "\(error)")
            }
            try await Task.sleep(nanoseconds: UInt64(max(0, delay) * 1e9))
            delay = min(delay * 2, 30)
            attempt += 1
        }
    }

    static func sendBlocking(_ method: String, _ url: HTTPURL, body: [UInt8], contentType: String?, timeout: Double)
        throws -> HTTPClientResponse
    {
        let deadline = SystemCall.monotonicNanoseconds() + UInt64(timeout * 1e9)
        let fd = try connect(url, timeout: timeout)
        defer { close(fd) }
        let tv = SystemCall.timeval(seconds: max(0.01, timeout))
        try SystemCall.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, tv, name: "SO_RCVTIMEO")
        try SystemCall.setOption(fd, SOL_SOCKET, SO_SNDTIMEO, tv, name: "SO_SNDTIMEO")
        let hostHeader = url.host.contains(":") ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)"
        var head = "\(method) \(url.path) HTTP/1.1\r\nHost: \(hostHeader)\r\nUser-Agent: gatehouse-monitor\r\n"
        head += "Connection: close\r\nContent-Length: \(body.count)\r\n"
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        head += "\r\n"
        let request = Array(head.utf8) + body
        var sent = 0
        while sent < request.count {
            let n = try request.withUnsafeBytes { raw in
                try SystemCall.runAllowingTimeout("send") {
                    Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                }
            }
            guard let n else { throw GatehouseError(.unavailable, "HTTP \(method) \(url): send timed out") }
            sent += n
        }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16384)
        while true {
            guard SystemCall.monotonicNanoseconds() < deadline else {
                throw GatehouseError(.unavailable, "HTTP \(method) \(url): no complete answer within \(timeout) s")
            }
            let n = try buffer.withUnsafeMutableBytes { raw in
                try SystemCall.runAllowingTimeout("recv") { recv(fd, raw.baseAddress!, raw.count, 0) }
            }
            guard let n else { throw GatehouseError(.unavailable, "HTTP \(method) \(url): recv timed out") }
            if n == 0 { break }
            response.append(contentsOf: buffer[0..<n])
            if let parsed = parse(response, complete: false) { return parsed }
        }
        guard let parsed = parse(response, complete: true) else {
            throw GatehouseError(.io, "HTTP \(method) \(url): malformed or truncated answer")
        }
        return parsed
    }

    /// Parses a response; nil when more bytes are needed (or, with `complete`, when malformed).
    static func parse(_ bytes: [UInt8], complete: Bool) -> HTTPClientResponse? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = firstIndex(of: separator, in: bytes, from: 0) else { return nil }
        let head = String(decoding: bytes[0..<headEnd], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/"), let status = Int(statusParts[1]) else {
            return nil
        }
        var contentLength: Int?
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if name == "content-length" { contentLength = Int(value) }
            if name == "transfer-encoding", value.lowercased().contains("chunked") { chunked = true }
        }
        let bodyStart = headEnd + 4
        if chunked {
            var out: [UInt8] = []
            var i = bodyStart
            while true {
                guard let lineEnd = firstIndex(of: [13, 10], in: bytes, from: i) else { return nil }
                let sizeText = String(decoding: bytes[i..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                i = lineEnd + 2
                if size == 0 { return HTTPClientResponse(status: status, body: out) }
                guard i + size + 2 <= bytes.count else { return nil }
                out.append(contentsOf: bytes[i..<(i + size)])
                i += size + 2
            }
        }
        if let contentLength {
            guard bytes.count >= bodyStart + contentLength else { return nil }
            return HTTPClientResponse(status: status, body: Array(bytes[bodyStart..<(bodyStart + contentLength)]))
        }
        if status == 204 || status == 304 || (100..<200).contains(status) {
            return HTTPClientResponse(status: status, body: [])
        }
        return complete ? HTTPClientResponse(status: status, body: Array(bytes[bodyStart...])) : nil
    }

    private static func firstIndex(of pattern: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard bytes.count >= pattern.count else { return nil }
        var i = start
        while i + pattern.count <= bytes.count {
            if bytes[i] == pattern[0] && Array(bytes[i..<(i + pattern.count)]) == pattern { return i }
            i += 1
        }
        return nil
    }

    /// Resolves and connects with a deadline (non-blocking connect + poll).
    private static func connect(_ url: HTTPURL, timeout: Double) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(url.host, String(url.port), &hints, &result)
        guard rc == 0, let first = result else {
            throw GatehouseError(.io, "getaddrinfo(\(url.host)) failed: \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(result) }
        var lastError: Error = GatehouseError(.io, "connect(\(url.host):\(url.port)) failed: no address")
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            candidate = info.pointee.ai_next
            do {
                let fd = try SystemCall.run("socket") { socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue), 0) }
                do {
                    let flags = fcntl(fd, F_GETFL)
                    _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
                    if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
                        guard errno == EINPROGRESS || errno == EINTR else {
                            throw SystemCall.error("connect(\(url.host):\(url.port))", errno)
                        }
                        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        let ready = try SystemCall.run("poll") { poll(&pfd, 1, Int32(max(1, timeout * 1000))) }
                        guard ready > 0 else {
                            throw GatehouseError(
                                .unavailable, "connect(\(url.host):\(url.port)) timed out after \(timeout) s")
                        }
                        let soError = try SystemCall.getIntOption(fd, SOL_SOCKET, SO_ERROR, name: "SO_ERROR")
                        guard soError == 0 else { throw SystemCall.error("connect(\(url.host):\(url.port))", soError) }
                    }
                    _ = fcntl(fd, F_SETFL, flags)
                    return fd
                } catch {
                    close(fd)
                    throw error
                }
            } catch {
                lastError = error
            }
        }
        throw lastError
    }
}
