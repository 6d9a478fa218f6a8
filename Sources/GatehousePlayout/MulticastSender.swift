import GatehouseCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Numeric address parsing (inet_pton), without name resolution: the playout only takes
/// literal addresses, so a typo fails at start instead of resolving somewhere else.
enum IPAddress {
    static func ipv4(_ text: String) -> in_addr? {
        var address = in_addr()
        return inet_pton(AF_INET, text, &address) == 1 ? address : nil
    }

    static func ipv6(_ text: String) -> in6_addr? {
        var address = in6_addr()
        return inet_pton(AF_INET6, text, &address) == 1 ? address : nil
    }
}

/// The socket calls the playout makes, each wrapped once (as swift-nio does): retried on
/// EINTR, and any other failure thrown as a `GatehouseError(.io)` naming the call and errno.
enum SystemCall {
    static func error(_ call: String, _ errnoValue: Int32, detail: String = "") -> GatehouseError {
        let reason = String(cString: strerror(errnoValue))
        return GatehouseError(
            .io, "\(call)\(detail.isEmpty ? "" : " (\(detail))") failed: \(reason) (errno \(errnoValue))",
            nativeCode: Int(errnoValue))
    }

    /// Runs `body` until it does not fail with EINTR. - Throws: the call's name and errno.
    @discardableResult
    static func retrying<T: BinaryInteger>(_ call: String, detail: String = "", _ body: () -> T) throws -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let e = errno
            if e == EINTR { continue }
            throw error(call, e, detail: detail)
        }
    }

    static func setOption<V: BitwiseCopyable>(
        _ fd: Int32, _ level: Int32, _ name: Int32, _ value: V,
        _ callName: String
    ) throws {
        try withUnsafeBytes(of: value) { raw in
            _ = try retrying("setsockopt(\(callName))") {
                setsockopt(fd, level, name, raw.baseAddress, socklen_t(raw.count))
            }
        }
    }

    /// The index of the interface called `name`, or of the interface holding address `text`.
    static func interfaceIndex(_ text: String) -> UInt32? {
        let byName = if_nametoindex(text)
        if byName != 0 { return byName }
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        let v4 = IPAddress.ipv4(text)
        let v6 = IPAddress.ipv6(text)
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, let name = entry.pointee.ifa_name else { continue }
            var match = false
            if Int32(sa.pointee.sa_family) == AF_INET, let v4 {
                sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    match = $0.pointee.sin_addr.s_addr == v4.s_addr
                }
            } else if Int32(sa.pointee.sa_family) == AF_INET6, var v6 {
                sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    var found = $0.pointee.sin6_addr
                    match = memcmp(&found, &v6, MemoryLayout<in6_addr>.size) == 0
                }
            }
            if match { return if_nametoindex(name) }
        }
        return nil
    }

    /// The first IPv4 address of interface `name`.
    static func ipv4Address(ofInterface name: String) -> in_addr? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, let n = entry.pointee.ifa_name, String(cString: n) == name,
                Int32(sa.pointee.sa_family) == AF_INET
            else { continue }
            return sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
        }
        return nil
    }
}

/// A UDP socket that sends datagrams to one multicast group on one interface, with the
/// TTL/hop limit set and loopback on (so a monitor on the same host hears the feed).
///
/// Not `Sendable`: one thread (the send loop) owns it. The descriptor closes in `deinit`.
final class MulticastSender {
    let group: SocketAddress
    private let fd: Int32
    private var destination: sockaddr_storage
    private let destinationLength: socklen_t

    /// Opens and configures the socket.
    /// - Throws: `GatehouseError(.configuration)` when the interface or source cannot be
    ///   used, `.io` naming the failing call (socket, setsockopt(IP_MULTICAST_IF), bind…).
    init(group: SocketAddress, interface: String, ttl: Int, sourceAddress: String?) throws {
        self.group = group
        let family = group.family == .ipv4 ? AF_INET : AF_INET6
        #if canImport(Glibc)
            let type = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        #else
            let type = SOCK_DGRAM
        #endif
        let fd = try SystemCall.retrying("socket") { socket(family, type, 0) }
        self.fd = fd
        var destination = sockaddr_storage()
        switch group.family {
        case .ipv4:
            guard let groupAddress = IPAddress.ipv4(group.host) else {
                close(fd)
                throw GatehouseError(.configuration, "GATEHOUSE_EMM_GROUP=\(group): not an IPv4 address")
            }
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = group.port.bigEndian
            sin.sin_addr = groupAddress
            withUnsafeBytes(of: &sin) { src in
                withUnsafeMutableBytes(of: &destination) { $0.copyMemory(from: src) }
            }
            self.destinationLength = socklen_t(MemoryLayout<sockaddr_in>.size)
        case .ipv6:
            guard let groupAddress = IPAddress.ipv6(group.host) else {
                close(fd)
                throw GatehouseError(.configuration, "GATEHOUSE_EMM_GROUP=\(group): not an IPv6 address")
            }
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = group.port.bigEndian
            sin6.sin6_addr = groupAddress
            withUnsafeBytes(of: &sin6) { src in
                withUnsafeMutableBytes(of: &destination) { $0.copyMemory(from: src) }
            }
            self.destinationLength = socklen_t(MemoryLayout<sockaddr_in6>.size)
        }
        self.destination = destination
        do {
            try configure(interface: interface, ttl: ttl, sourceAddress: sourceAddress)
        } catch {
            close(fd)
            throw error
        }
    }

    private func configure(interface: String, ttl: Int, sourceAddress: String?) throws {
        switch group.family {
        case .ipv4:
            guard let local = IPAddress.ipv4(interface) ?? SystemCall.ipv4Address(ofInterface: interface) else {
                throw GatehouseError(
                    .configuration,
                    "GATEHOUSE_MULTICAST_INTERFACE=\(interface): neither an IPv4 address nor an interface with one")
            }
            try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, local, "IP_MULTICAST_IF")
            try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_TTL, Int32(ttl), "IP_MULTICAST_TTL")
            try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, Int32(1), "IP_MULTICAST_LOOP")
            if let sourceAddress {
                guard let source = IPAddress.ipv4(sourceAddress) else {
                    throw GatehouseError(.configuration, "GATEHOUSE_EMM_SOURCE=\(sourceAddress): not an IPv4 address")
                }
                var sin = sockaddr_in()
                sin.sin_family = sa_family_t(AF_INET)
                sin.sin_addr = source
                try withUnsafePointer(to: &sin) { p in
                    try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                        _ = try SystemCall.retrying("bind", detail: sourceAddress) {
                            bind(fd, sa, socklen_t(MemoryLayout<sockaddr_in>.size))
                        }
                    }
                }
            }
        case .ipv6:
            guard let index = SystemCall.interfaceIndex(interface) else {
                throw GatehouseError(
                    .configuration,
                    "GATEHOUSE_MULTICAST_INTERFACE=\(interface): no interface with that name or address")
            }
            try SystemCall.setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_IF, UInt32(index), "IPV6_MULTICAST_IF")
            try SystemCall.setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_HOPS, Int32(ttl), "IPV6_MULTICAST_HOPS")
            try SystemCall.setOption(fd, Int32(IPPROTO_IPV6), IPV6_MULTICAST_LOOP, UInt32(1), "IPV6_MULTICAST_LOOP")
            if let sourceAddress {
                guard let source = IPAddress.ipv6(sourceAddress) else {
                    throw GatehouseError(.configuration, "GATEHOUSE_EMM_SOURCE=\(sourceAddress): not an IPv6 address")
                }
                var sin6 = sockaddr_in6()
                sin6.sin6_family = sa_family_t(AF_INET6)
                sin6.sin6_addr = source
                try withUnsafePointer(to: &sin6) { p in
                    try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                        _ = try SystemCall.retrying("bind", detail: sourceAddress) {
                            bind(fd, sa, socklen_t(MemoryLayout<sockaddr_in6>.size))
                        }
                    }
                }
            }
        }
    }

    deinit { close(fd) }

    /// Sends one datagram.
    /// - Throws: `GatehouseError(.io)` naming `sendto` and errno (EINTR is retried; the
    ///   caller decides whether ENOBUFS/EAGAIN-like errors are fatal).
    func send(_ datagram: UnsafeRawBufferPointer) throws {
        let fd = self.fd
        let length = destinationLength
        try withUnsafePointer(to: &destination) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                _ = try SystemCall.retrying("sendto", detail: group.description) {
                    sendto(fd, datagram.baseAddress, datagram.count, 0, sa, length)
                }
            }
        }
    }
}
