import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A test receiver: joins a multicast group on the loopback interface (IP_ADD_MEMBERSHIP
/// with imr_interface 127.0.0.1, or IPV6_JOIN_GROUP on `lo`), binds the port with
/// SO_REUSEADDR, and collects datagrams on its own thread with their arrival time.
final class MulticastReceiver: @unchecked Sendable {
    struct Datagram: Sendable {
        var bytes: [UInt8]
        /// Wall clock, ms since the epoch.
        var arrivedAt: Int64
        /// Monotonic ns.
        var monotonic: UInt64
    }

    enum Failure: Error, CustomStringConvertible {
        case call(String, Int32)
        var description: String {
            switch self {
            case .call(let name, let e): "\(name) failed: \(String(cString: strerror(e))) (errno \(e))"
            }
        }
    }

    private let fd: Int32
    private let received = Mutex<[Datagram]>([])
    private let stopped = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    init(group: String, port: UInt16, ipv6: Bool = false) throws {
        let family = ipv6 ? AF_INET6 : AF_INET
        fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Failure.call("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var size: Int32 = 4 << 20
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        if ipv6 {
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            addr.sin6_port = port.bigEndian  // bound to :: (a link-scope group needs a scope id to bind)
            let r = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
            guard r == 0 else { throw Failure.call("bind", errno) }
            var mreq = ipv6_mreq()
            inet_pton(AF_INET6, group, &mreq.ipv6mr_multiaddr)
            mreq.ipv6mr_interface = if_nametoindex("lo")
            guard
                setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_JOIN_GROUP, &mreq, socklen_t(MemoryLayout<ipv6_mreq>.size))
                    == 0
            else { throw Failure.call("setsockopt(IPV6_JOIN_GROUP)", errno) }
        } else {
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = port.bigEndian
            inet_pton(AF_INET, group, &addr.sin_addr)
            let r = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard r == 0 else { throw Failure.call("bind", errno) }
            var mreq = ip_mreq()
            inet_pton(AF_INET, group, &mreq.imr_multiaddr)
            inet_pton(AF_INET, "127.0.0.1", &mreq.imr_interface)
            guard
                setsockopt(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, &mreq, socklen_t(MemoryLayout<ip_mreq>.size)) == 0
            else { throw Failure.call("setsockopt(IP_ADD_MEMBERSHIP)", errno) }
        }
        let thread = Thread { [self] in self.loop() }
        thread.start()
    }

    deinit { close(fd) }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !stopped.load(ordering: .acquiring) {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                let d = Datagram(
                    bytes: Array(buffer[0..<n]), arrivedAt: Self.wallMilliseconds(), monotonic: Self.monotonic())
                received.withLock { $0.append(d) }
            }
        }
        finished.store(true, ordering: .releasing)
    }

    /// Stops the thread (within ~50 ms) and returns what arrived.
    func stop() -> [Datagram] {
        stopped.store(true, ordering: .releasing)
        while !finished.load(ordering: .acquiring) { usleep(5000) }
        return received.withLock { $0 }
    }

    var count: Int { received.withLock { $0.count } }

    static func wallMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    static func monotonic() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// A group and port unlikely to clash with another test running at the same time.
    static func randomIPv4Group() -> (String, UInt16) {
        ("239.255.\(Int.random(in: 100...250)).\(Int.random(in: 1...250))", UInt16.random(in: 20000...60000))
    }
}
