import GatehouseCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Socket settings of the receiver, kept apart from the socket (TSDuck's receiver takes
/// its settings as a value before it opens anything).
public struct MulticastReceiverSettings: Sendable {
    public var group: MulticastGroup
    /// Interface address (IPv4 or IPv6) or name (`lo`). Default `127.0.0.1`.
    public var interface: String = "127.0.0.1"
    /// Source address for a source-specific join (SSM); nil: any source.
    public var source: String?
    /// SO_RCVBUF asked for. Default 4 MiB.
    public var receiveBufferBytes: Int = 4 << 20
    /// Datagrams per recvmmsg call. Default 64.
    public var batchSize: Int = 64
    /// Largest datagram kept whole; longer ones are counted as truncated. Default 9216 bytes.
    public var maximumDatagramSize: Int = 9216
    /// How often the loop wakes with nothing received (stop checks, condition ticks). Default 0.1 s.
    public var wakeInterval: Double = 0.1

    public init(
        group: MulticastGroup, interface: String = "127.0.0.1", source: String? = nil,
        receiveBufferBytes: Int = 4 << 20
    ) {
        self.group = group
        self.interface = interface
        self.source = source
        self.receiveBufferBytes = receiveBufferBytes
    }
}

/// A UDP socket joined to one multicast group, read in batches with recvmmsg on a thread
/// of its own (blocking reads never run on the cooperative pool).
///
/// SO_REUSEADDR and SO_REUSEPORT let several monitors (and a capture tool) join the same
/// group on one host; every one receives every datagram. The socket is bound to the group
/// address, not the wildcard, and IP_MULTICAST_ALL is off, so datagrams of other groups
/// on the same port stay out. SO_RXQ_OVFL makes the kernel report its drop counter with
/// each datagram.
///
/// `Sendable`: the descriptor is fixed after `init`; the stop flag is atomic.
public final class MulticastReceiver: Sendable {
    public let settings: MulticastReceiverSettings
    /// The SO_RCVBUF the kernel granted (Linux reports twice the usable size).
    public let grantedReceiveBufferBytes: Int
    private let fd: Int32
    private let stopRequested = Atomic<Bool>(false)

    /// Opens, binds and joins.
    /// - Throws: `GatehouseError(.io)` naming the call that failed (socket, bind, setsockopt(IP_ADD_MEMBERSHIP), …),
    ///   `.configuration` naming GATEHOUSE_MULTICAST_INTERFACE or GATEHOUSE_MONITOR_SOURCE when they do not resolve.
    public init(settings: MulticastReceiverSettings) throws {
        self.settings = settings
        let family = settings.group.isIPv6 ? AF_INET6 : AF_INET
        let fd = try SystemCall.run("socket") { socket(family, Int32(SOCK_DGRAM.rawValue), 0) }
        do {
            let one: Int32 = 1
            try SystemCall.setOption(fd, SOL_SOCKET, SO_REUSEADDR, one, name: "SO_REUSEADDR")
            try SystemCall.setOption(fd, SOL_SOCKET, SO_REUSEPORT, one, name: "SO_REUSEPORT")
            try SystemCall.setOption(fd, SOL_SOCKET, LinuxSocket.SO_RXQ_OVFL, one, name: "SO_RXQ_OVFL")
            let requested = Int32(clamping: settings.receiveBufferBytes)
            try SystemCall.setOption(fd, SOL_SOCKET, SO_RCVBUF, requested, name: "SO_RCVBUF")
            var granted = Int(try SystemCall.getIntOption(fd, SOL_SOCKET, SO_RCVBUF, name: "SO_RCVBUF"))
            // Linux doubles the value (bookkeeping overhead) and reports the doubled size.
            if granted < 2 * settings.receiveBufferBytes {
                // Above net.core.rmem_max only a privileged process may go (CAP_NET_ADMIN): try, ignore a refusal.
                if (try? SystemCall.setOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, requested, name: "SO_RCVBUFFORCE")) != nil
                {
                    granted = Int(try SystemCall.getIntOption(fd, SOL_SOCKET, SO_RCVBUF, name: "SO_RCVBUF"))
                }
            }
            grantedReceiveBufferBytes = granted
            let timeout = SystemCall.timeval(seconds: settings.wakeInterval)
            try SystemCall.setOption(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, name: "SO_RCVTIMEO")
            if settings.group.isIPv6 {
                try Self.bindAndJoinIPv6(fd, settings)
            } else {
                try Self.bindAndJoinIPv4(fd, settings)
            }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Asks the loop to return; it notices within `wakeInterval`.
    public func stop() { stopRequested.store(true, ordering: .releasing) }

    public var isStopRequested: Bool { stopRequested.load(ordering: .acquiring) }

    /// One batch of datagrams, valid only during the callback.
    public struct Batch {
        public var datagrams: [UnsafeRawBufferPointer]
        /// The socket's cumulative drop count when the kernel reported one.
        public var kernelDrops: UInt32?
        /// Datagrams in this batch cut short by `maximumDatagramSize`.
        public var truncated: Int
    }

    /// Receives until `stop()`: `handle` gets each batch, `idle` runs after every wake-up
    /// (batch or timeout), so the caller can tick conditions. Blocking: call it on a thread
    /// of its own.
    /// - Throws: the first receive error other than a timeout or EINTR.
    public func receiveLoop(_ handle: (Batch) -> Void, idle: () -> Void) throws {
        let count = max(1, settings.batchSize)
        let size = max(188, settings.maximumDatagramSize)
        let controlSize = 64
        let data = UnsafeMutableRawPointer.allocate(byteCount: count * size, alignment: 16)
        let control = UnsafeMutableRawPointer.allocate(byteCount: count * controlSize, alignment: 16)
        let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: count)
        let headers = UnsafeMutablePointer<LinuxSocket.MMsgHdr>.allocate(capacity: count)
        defer {
            data.deallocate()
            control.deallocate()
            iovecs.deallocate()
            headers.deallocate()
        }
        var batch = Batch(datagrams: [], kernelDrops: nil, truncated: 0)
        batch.datagrams.reserveCapacity(count)
        while !isStopRequested {
            for i in 0..<count {
                iovecs[i] = iovec(iov_base: data + i * size, iov_len: size)
                var header = msghdr()
                header.msg_iov = iovecs + i
                header.msg_iovlen = 1
                header.msg_control = control + i * controlSize
                header.msg_controllen = controlSize
                headers[i] = LinuxSocket.MMsgHdr(msg_hdr: header, msg_len: 0)
            }
            let received: Int
            if let recvmmsg = LinuxSocket.recvmmsg {
                guard
                    let n = try SystemCall.runAllowingTimeout(
                        "recvmmsg",
                        {
                            recvmmsg(
                                fd, UnsafeMutableRawPointer(headers), UInt32(count), LinuxSocket.MSG_WAITFORONE, nil)
                        })
                else {
                    idle()
                    continue
                }
                received = Int(n)
            } else {
                guard let n = try SystemCall.runAllowingTimeout("recvmsg", { recvmsg(fd, &headers[0].msg_hdr, 0) })
                else {
                    idle()
                    continue
                }
                headers[0].msg_len = UInt32(n)
                received = 1
            }
            batch.datagrams.removeAll(keepingCapacity: true)
            batch.kernelDrops = nil
            batch.truncated = 0
            for i in 0..<received {
                let header = headers[i].msg_hdr
                if header.msg_flags & Int32(MSG_TRUNC) != 0 { batch.truncated += 1 }
                batch.datagrams.append(UnsafeRawBufferPointer(start: data + i * size, count: Int(headers[i].msg_len)))
                if let drops = Self.dropCount(header) { batch.kernelDrops = max(batch.kernelDrops ?? 0, drops) }
            }
            handle(batch)
            idle()
        }
    }

    /// The SO_RXQ_OVFL counter in a received message's ancillary data, if present.
    /// `cmsghdr` is `{ size_t len; int level; int type; }` then data aligned to `size_t`.
    private static func dropCount(_ header: msghdr) -> UInt32? {
        guard let control = header.msg_control, header.msg_controllen >= 16 else { return nil }
        let total = Int(header.msg_controllen)
        var offset = 0
        while offset + 16 <= total {
            let length = control.loadUnaligned(fromByteOffset: offset, as: Int.self)
            let level = control.loadUnaligned(fromByteOffset: offset + 8, as: Int32.self)
            let type = control.loadUnaligned(fromByteOffset: offset + 12, as: Int32.self)
            guard length >= 16, offset + length <= total else { return nil }
            if level == SOL_SOCKET && type == LinuxSocket.SO_RXQ_OVFL && length >= 20 {
                return control.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self)
            }
            offset += (length + 7) & ~7
        }
        return nil
    }

    // MARK: Joining

    private static func bindAndJoinIPv4(_ fd: Int32, _ s: MulticastReceiverSettings) throws {
        var group = in_addr()
        _ = inet_pton(AF_INET, s.group.address, &group)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = s.group.port.bigEndian
        address.sin_addr = group
        _ = try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                try SystemCall.run("bind(\(s.group))") { bind(fd, sa, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        let zero: Int32 = 0
        try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_ALL, zero, name: "IP_MULTICAST_ALL")
        let (interfaceAddress, interfaceIndex) = try resolveInterfaceIPv4(s.interface)
        if let source = s.source {
            var sourceAddress = in_addr()
            guard inet_pton(AF_INET, source, &sourceAddress) == 1 else {
                throw GatehouseError(
                    .configuration, "GATEHOUSE_MONITOR_SOURCE=\(source): not an IPv4 address for an IPv4 group")
            }
            var request = ip_mreq_source()
            request.imr_multiaddr = group
            request.imr_interface = interfaceAddress
            request.imr_sourceaddr = sourceAddress
            try SystemCall.setOption(
                fd, Int32(IPPROTO_IP), IP_ADD_SOURCE_MEMBERSHIP, request,
                name: "IP_ADD_SOURCE_MEMBERSHIP")
        } else {
            var request = ip_mreqn()
            request.imr_multiaddr = group
            request.imr_address = interfaceAddress
            request.imr_ifindex = interfaceIndex
            try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_ADD_MEMBERSHIP, request, name: "IP_ADD_MEMBERSHIP")
        }
    }

    private static func bindAndJoinIPv6(_ fd: Int32, _ s: MulticastReceiverSettings) throws {
        var group = in6_addr()
        _ = inet_pton(AF_INET6, s.group.address, &group)
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        address.sin6_port = s.group.port.bigEndian
        address.sin6_addr = group
        let index = try resolveInterfaceIndex(s.interface)
        address.sin6_scope_id = index
        _ = try withUnsafePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                try SystemCall.run("bind(\(s.group))") { bind(fd, sa, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
        if let source = s.source {
            var sourceAddress = in6_addr()
            guard inet_pton(AF_INET6, source, &sourceAddress) == 1 else {
                throw GatehouseError(
                    .configuration, "GATEHOUSE_MONITOR_SOURCE=\(source): not an IPv6 address for an IPv6 group")
            }
            var request = group_source_req()
            request.gsr_interface = index
            withUnsafeMutableBytes(of: &request.gsr_group) { raw in
                var g = sockaddr_in6()
                g.sin6_family = sa_family_t(AF_INET6)
                g.sin6_addr = group
                withUnsafeBytes(of: &g) { raw.copyMemory(from: $0) }
            }
            withUnsafeMutableBytes(of: &request.gsr_source) { raw in
                var g = sockaddr_in6()
                g.sin6_family = sa_family_t(AF_INET6)
                g.sin6_addr = sourceAddress
                withUnsafeBytes(of: &g) { raw.copyMemory(from: $0) }
            }
            try SystemCall.setOption(
                fd, Int32(IPPROTO_IPV6), MCAST_JOIN_SOURCE_GROUP, request,
                name: "MCAST_JOIN_SOURCE_GROUP")
        } else {
            var request = ipv6_mreq()
            request.ipv6mr_multiaddr = group
            request.ipv6mr_interface = index
            try SystemCall.setOption(fd, Int32(IPPROTO_IPV6), IPV6_JOIN_GROUP, request, name: "IPV6_JOIN_GROUP")
        }
    }

    /// An IPv4 interface given as an address (used as is) or a name (its first IPv4 address and index).
    static func resolveInterfaceIPv4(_ text: String) throws -> (in_addr, Int32) {
        var address = in_addr()
        if inet_pton(AF_INET, text, &address) == 1 { return (address, 0) }
        let index = if_nametoindex(text)
        guard index != 0 else {
            throw GatehouseError(
                .configuration, "GATEHOUSE_MULTICAST_INTERFACE=\(text): no such interface or IPv4 address")
        }
        var list: UnsafeMutablePointer<ifaddrs>?
        if getifaddrs(&list) == 0 {
            defer { freeifaddrs(list) }
            var cursor = list
            while let entry = cursor {
                cursor = entry.pointee.ifa_next
                guard let name = entry.pointee.ifa_name, String(cString: name) == text,
                    let sa = entry.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET)
                else { continue }
                let found = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                return (found, Int32(index))
            }
        }
        return (in_addr(s_addr: 0), Int32(index))
    }

    /// An interface index from a name, a number, or an address of that interface.
    static func resolveInterfaceIndex(_ text: String) throws -> UInt32 {
        if let number = UInt32(text) { return number }
        let byName = if_nametoindex(text)
        if byName != 0 { return byName }
        var v4 = in_addr()
        var v6 = in6_addr()
        let isV4 = inet_pton(AF_INET, text, &v4) == 1
        let isV6 = !isV4 && inet_pton(AF_INET6, text, &v6) == 1
        var list: UnsafeMutablePointer<ifaddrs>?
        if (isV4 || isV6), getifaddrs(&list) == 0 {
            defer { freeifaddrs(list) }
            var cursor = list
            while let entry = cursor {
                cursor = entry.pointee.ifa_next
                guard let sa = entry.pointee.ifa_addr, let name = entry.pointee.ifa_name else { continue }
                var matches = false
                if isV4, sa.pointee.sa_family == sa_family_t(AF_INET) {
                    matches =
                        sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr.s_addr }
                        == v4.s_addr
                } else if isV6, sa.pointee.sa_family == sa_family_t(AF_INET6) {
                    var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                    matches = withUnsafeBytes(of: &a) { x in withUnsafeBytes(of: &v6) { y in x.elementsEqual(y) } }
                }
                if matches { return if_nametoindex(name) }
            }
        }
        throw GatehouseError(.configuration, "GATEHOUSE_MULTICAST_INTERFACE=\(text): no such interface")
    }
}

/// Sends datagrams to a multicast group, on one interface, TTL 1, looped back to local
/// receivers: for tests, the benchmark and tools. It never sends anywhere but the
/// interface it is given (loopback by default).
public final class LoopbackMulticastSender: Sendable {
    private let fd: Int32

    /// - Parameter interface: IPv4 address of the outgoing interface (default 127.0.0.1).
    public init(group: MulticastGroup, interface: String = "127.0.0.1", sendBufferBytes: Int = 4 << 20) throws {
        guard !group.isIPv6 else {
            throw GatehouseError(.invalidInput, "MulticastSender: IPv6 groups are not supported by this test sender")
        }
        let fd = try SystemCall.run("socket") { socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0) }
        do {
            let (address, _) = try MulticastReceiver.resolveInterfaceIPv4(interface)
            try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_IF, address, name: "IP_MULTICAST_IF")
            try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_TTL, Int32(1), name: "IP_MULTICAST_TTL")
            try SystemCall.setOption(fd, Int32(IPPROTO_IP), IP_MULTICAST_LOOP, Int32(1), name: "IP_MULTICAST_LOOP")
            try SystemCall.setOption(fd, SOL_SOCKET, SO_SNDBUF, Int32(clamping: sendBufferBytes), name: "SO_SNDBUF")
            var destination = sockaddr_in()
            destination.sin_family = sa_family_t(AF_INET)
            destination.sin_port = group.port.bigEndian
            _ = inet_pton(AF_INET, group.address, &destination.sin_addr)
            _ = try withUnsafePointer(to: &destination) { pointer in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                    try SystemCall.run("connect(\(group))") {
                        connect(fd, sa, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends one datagram (blocking).
    public func send(_ datagram: [UInt8]) throws {
        _ = try datagram.withUnsafeBytes { raw in
            try SystemCall.run("send") { Glibc.send(fd, raw.baseAddress, raw.count, 0) }
        }
    }

    /// Sends several datagrams with one sendmmsg call where available.
    /// - Returns: how many were sent.
    @discardableResult
    public func send(batch: [[UInt8]]) throws -> Int {
        guard let sendmmsg = LinuxSocket.sendmmsg, batch.count > 1 else {
            for d in batch { try send(d) }
            return batch.count
        }
        let count = batch.count
        let iovecs = UnsafeMutablePointer<iovec>.allocate(capacity: count)
        let headers = UnsafeMutablePointer<LinuxSocket.MMsgHdr>.allocate(capacity: count)
        defer {
            iovecs.deallocate()
            headers.deallocate()
        }
        // The arrays stay alive for the call: their storage is pinned by withUnsafeBytes below.
        return try sendPinned(batch, index: 0, iovecs: iovecs, headers: headers, sendmmsg: sendmmsg)
    }

    private func sendPinned(
        _ batch: [[UInt8]], index: Int, iovecs: UnsafeMutablePointer<iovec>,
        headers: UnsafeMutablePointer<LinuxSocket.MMsgHdr>, sendmmsg: LinuxSocket.SendMMsg
    ) throws -> Int {
        if index == batch.count {
            var sent = 0
            while sent < batch.count {
                let n = try SystemCall.run("sendmmsg") {
                    sendmmsg(fd, UnsafeMutableRawPointer(headers + sent), UInt32(batch.count - sent), 0)
                }
                sent += Int(n)
            }
            return sent
        }
        return try batch[index].withUnsafeBytes { raw in
            iovecs[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)
            var header = msghdr()
            header.msg_iov = iovecs + index
            header.msg_iovlen = 1
            headers[index] = LinuxSocket.MMsgHdr(msg_hdr: header, msg_len: 0)
            return try sendPinned(batch, index: index + 1, iovecs: iovecs, headers: headers, sendmmsg: sendmmsg)
        }
    }
}
