import Foundation
import GatehouseCore
import GatehouseHTTP

/// A live server on 127.0.0.1 (or ::1) port 0 with a memory log, for tests that speak real HTTP.
struct TestServer {
    let server: HTTPServer
    let log: MemorySink
    let baseURL: String

    init(
        configuration: HTTPServerConfiguration = TestServer.defaultConfiguration(),
        handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
    ) throws {
        let log = MemorySink()
        let logger = Logger(label: "http-test", minimumLevel: .debug, sink: log)
        server = HTTPServer(configuration: configuration, logger: logger, handler: handler)
        try server.start()
        self.log = log
        let address = server.boundAddress!
        let scheme = configuration.tls == nil ? "http" : "https"
        baseURL = "\(scheme)://\(address)"
    }

    init(
        configuration: HTTPServerConfiguration = TestServer.defaultConfiguration(),
        routes: (inout Router) -> Void
    ) throws {
        var router = Router(authenticator: TestTokens.authenticator, logger: Logger.disabled)
        routes(&router)
        try self.init(configuration: configuration, handler: router.handler)
    }

    static func defaultConfiguration(host: String = "127.0.0.1") -> HTTPServerConfiguration {
        var configuration = HTTPServerConfiguration(address: HTTPServerAddress(host: host, port: 0))
        configuration.threadCount = 4
        configuration.shutdownGracePeriodSeconds = 2
        return configuration
    }

    func url(_ path: String) -> String { baseURL + path }

    /// Stops the server and returns the log. Access-log lines are written when MHD reports a
    /// request complete, which can be just after the client has its response; stopping
    /// joins MHD's threads, so every line is there.
    func stopAndReadLog() -> [String] {
        server.shutdown()
        return log.lines
    }
}

/// Tokens for tests. The real hash is SHA-256 from the crypto module, which this target
/// may not depend on; any deterministic digest exercises the same code.
enum TestTokens {
    static let hash: @Sendable ([UInt8]) -> [UInt8] = { bytes in
        // FNV-1a 64 over the bytes, stretched to 32 bytes: deterministic, not cryptographic.
        var out: [UInt8] = []
        for round in 0..<4 {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325 &+ UInt64(round)
            for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: h >> UInt64(shift)))
            }
        }
        return out
    }

    static let reader = "reader-token-1f2e3d"
    static let writer = "writer-token-9a8b7c"

    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    static let authenticator: StaticTokenAuthenticator = try! StaticTokenAuthenticator(
        entries: [
            .init(name: "sms-reader", hashHex: hex(hash(Array(reader.utf8))), scopes: [.read]),
            .init(name: "sms-writer", hashHex: hex(hash(Array(writer.utf8))), scopes: [.read, .write]),
        ], hash: hash)
}

/// What curl saw.
struct CurlResult {
    var exitCode: Int32
    var stdout: String
    var stderr: String

    /// With `-i`/`-D -` output: the status of the last response.
    var status: Int? {
        let lines = stdout.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let statusLine = lines.last(where: { $0.hasPrefix("HTTP/") }) else { return nil }
        let parts = statusLine.split(separator: " ")
        return parts.count > 1 ? Int(parts[1]) : nil
    }

    /// With `-i` output: a header of the last response (case-insensitive).
    func header(_ name: String) -> String? {
        let blocks = stdout.components(separatedBy: "\r\n\r\n")
        let headerBlock = blocks.last(where: { $0.hasPrefix("HTTP/") }) ?? ""
        for line in headerBlock.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            if line[..<colon].lowercased() == name.lowercased() {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// With `-i` output: the body after the last header block.
    var body: String {
        guard let range = stdout.range(of: "\r\n\r\n", options: .backwards) else { return stdout }
        return String(stdout[range.upperBound...])
    }

    /// The body parsed as a JSON object.
    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
    }

    var error: [String: Any]? { json?["error"] as? [String: Any] }
}

enum Curl {
    /// Runs curl with `arguments` (silent, showing errors) and waits for it.
    static func run(_ arguments: [String], input: Data? = nil) throws -> CurlResult {
        let process = try start(arguments, input: input)
        return process.wait()
    }

    struct Running {
        let process: Process
        let stdout: Pipe
        let stderr: Pipe

        func wait() -> CurlResult {
            // Read before waiting so a large output cannot fill the pipe and block curl.
            let out = stdout.fileHandleForReading.readDataToEndOfFile()
            let err = stderr.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return CurlResult(
                exitCode: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                stderr: String(decoding: err, as: UTF8.self))
        }
    }

    static func start(_ arguments: [String], input: Data? = nil) throws -> Running {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sS", "--max-time", "20"] + arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        if let input {
            let stdin = Pipe()
            process.standardInput = stdin
            try process.run()
            stdin.fileHandleForWriting.write(input)
            try stdin.fileHandleForWriting.close()
        } else {
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }
        return Running(process: process, stdout: stdout, stderr: stderr)
    }
}

/// A temporary directory removed when the test ends.
final class TemporaryDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "gatehouse-http-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A plain TCP connection: it occupies a connection slot, or speaks HTTP/1.1 by hand when a
/// test needs to choose when each request of one keep-alive connection goes out.
final class IdleConnection {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw GatehouseError(.io, "connect failed: errno \(errno)")
        }
    }
    deinit { close(fd) }

    /// Sends `request` (a whole HTTP/1.1 request) and returns the response: its head and
    /// `Content-Length` bytes of body; empty when nothing came within `seconds`.
    func exchange(_ request: String, seconds: Int = 5) -> String {
        let bytes = Array(request.utf8)
        guard bytes.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else { return "" }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let text = String(decoding: received, as: UTF8.self)
            if let end = text.range(of: "\r\n\r\n") {
                let head = text[..<end.lowerBound].lowercased()
                let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                    .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                if text.utf8.count - text.utf8.distance(from: text.startIndex, to: end.upperBound) >= length {
                    return text
                }
            }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 { return String(decoding: received, as: UTF8.self) }
            received.append(contentsOf: buffer[0..<count])
        }
    }
}
