import Foundation
import GatehouseCore

#if canImport(Glibc)
    import Glibc
#endif

/// Every system call of the monitor goes through here once (as swift-nio does): `EINTR`
/// is retried, anything else becomes a `GatehouseError(.io)` naming the call and the
/// errno, so a log line says which call failed and why.
enum SystemCall {
    /// Runs `body` until it does not fail with `EINTR`.
    /// - Returns: the call's non-negative result.
    /// - Throws: `GatehouseError(.io)` "`name` failed: strerror (errno N)" with `nativeCode` errno.
    @discardableResult
    static func run<T: BinaryInteger>(_ name: String, _ body: () -> T) throws -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw error(name, code)
        }
    }

    /// Like `run`, but `EAGAIN`/`EWOULDBLOCK` (a receive timeout) returns nil instead of throwing.
    static func runAllowingTimeout<T: BinaryInteger>(_ name: String, _ body: () -> T) throws -> T? {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { return nil }
            throw error(name, code)
        }
    }

    static func error(_ name: String, _ code: Int32) -> GatehouseError {
        GatehouseError(.io, "\(name) failed: \(String(cString: strerror(code))) (errno \(code))", nativeCode: Int(code))
    }

    static func setOption<T>(_ fd: Int32, _ level: Int32, _ option: Int32, _ value: T, name: String) throws {
        try withUnsafeBytes(of: value) { raw in
            _ = try run("setsockopt(\(name))") { setsockopt(fd, level, option, raw.baseAddress, socklen_t(raw.count)) }
        }
    }

    static func getIntOption(_ fd: Int32, _ level: Int32, _ option: Int32, name: String) throws -> Int32 {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        try run("getsockopt(\(name))") { getsockopt(fd, level, option, &value, &length) }
        return value
    }

    /// A `timeval` for SO_RCVTIMEO / SO_SNDTIMEO.
    static func timeval(seconds: Double) -> Glibc.timeval {
        let whole = Int(seconds)
        return Glibc.timeval(tv_sec: whole, tv_usec: Int((seconds - Double(whole)) * 1_000_000))
    }

    /// The monotonic clock in nanoseconds (CLOCK_MONOTONIC): what the pure core measures with.
    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    static func unixTime() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// The host name (the default instance label).
    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }
}

/// Constants and C entry points Swift's Glibc module does not export (they sit behind
/// `_GNU_SOURCE` or in headers it does not import). Linux values; they are ABI.
enum LinuxSocket {
    /// `SO_RXQ_OVFL` (asm-generic/socket.h): ask for the socket's drop counter as ancillary data.
    static let SO_RXQ_OVFL: Int32 = 40
    /// `MSG_WAITFORONE`: recvmmsg blocks for the first datagram only, then takes what is queued.
    static let MSG_WAITFORONE: Int32 = 0x10000

    /// `struct mmsghdr` (sys/socket.h): a msghdr and the byte count the kernel fills in.
    struct MMsgHdr {
        var msg_hdr: msghdr
        var msg_len: UInt32
    }

    typealias RecvMMsg =
        @convention(c) (
            Int32, UnsafeMutableRawPointer?, UInt32, Int32, UnsafeMutablePointer<timespec>?
        ) -> Int32
    typealias SendMMsg = @convention(c) (Int32, UnsafeMutableRawPointer?, UInt32, Int32) -> Int32

    /// recvmmsg(2) from libc, looked up once; nil on a libc without it (then recvmsg is used).
    static let recvmmsg: RecvMMsg? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "recvmmsg") else { return nil }
        return unsafeBitCast(symbol, to: RecvMMsg.self)
    }()

    static let sendmmsg: SendMMsg? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sendmmsg") else { return nil }
        return unsafeBitCast(symbol, to: SendMMsg.self)
    }()
}
