import Foundation

/// The `gatehouse` executable run as a child process, the way an operator runs it.
public final class GatehouseProcess: @unchecked Sendable {
    // Process is not Sendable; every use goes through this object from one test at a time.
    public let process: Process
    public let logFile: URL

    /// The built executable: `GATEHOUSE_BIN`, else `.build/debug/gatehouse` in the checkout.
    public static func executable() throws -> URL {
        if let path = ProcessInfo.processInfo.environment["GATEHOUSE_BIN"] { return URL(fileURLWithPath: path) }
        let url = Fixtures.repositoryRoot.appendingPathComponent(".build/debug/gatehouse")
        guard FileManager.default.isExecutableFile(atPath: url.path) else {
            throw NSError(domain: "gatehouse.tests", code: 1, userInfo: [
                NSLocalizedDescriptionKey: "no gatehouse executable at \(url.path): run `swift build` (scripts/test.sh does)"
            ])
        }
        return url
    }

    /// Starts `gatehouse ARGS` with `environment` layered over the test's own.
    public init(_ arguments: [String], environment: [String: String], logFile: URL) throws {
        let process = Process()
        process.executableURL = try Self.executable()
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        if !FileManager.default.fileExists(atPath: logFile.path) {
            FileManager.default.createFile(atPath: logFile.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: logFile)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        self.logFile = logFile
    }

    /// Runs `gatehouse ARGS` to completion and returns its standard output.
    public static func run(_ arguments: [String], environment: [String: String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    public var isRunning: Bool { process.isRunning }

    /// SIGKILL: no chance to clean up, as in a crash.
    public func crash() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// SIGTERM, then wait up to `seconds` (SIGKILL after that).
    public func stop(within seconds: Double = 10) {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        crash()
    }

    /// Waits until the process exits on its own (up to `seconds`); true if it did.
    public func waitForExit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        return !process.isRunning
    }

    public var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
public func freeLoopbackPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}
