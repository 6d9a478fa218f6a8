import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseTS
import GatehouseTestSupport
import Synchronization

@testable import GatehouseMonitor

#if canImport(Glibc)
    import Glibc
#endif

let emmPID: UInt16 = 0x0100
let key1 = try! SymmetricKey(hex: "000102030405060708090a0b0c0d0e0f")
let key2 = try! SymmetricKey(hex: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
let wrongKey = try! SymmetricKey(hex: "ffeeddccbbaa99887766554433221100")

/// Builds EMM sections and TS datagrams the way the playout does (CAT, EMM PID, 7 packets a datagram).
struct StreamBuilder {
    var emm = SectionPacketizer(pid: emmPID, packing: .packetPerSection)
    var cat = SectionPacketizer(pid: TS.PID.cat, packing: .packetPerSection)

    static func seal(
        device: String, key: SymmetricKey, sequence: UInt64, keyVersion: UInt16 = 1,
        payload: EMMPayload = .entitlementAdd(EntitlementGrant(productID: 7, start: 1_767_225_600, end: 1_769_904_000))
    )
        -> [UInt8]
    {
        let sealer = try! EMMSealer(key: key, keyVersion: keyVersion)
        return try! sealer.seal(
            EMM(
                addressing: DeviceAddress.addressing(deviceID: device), keyVersion: keyVersion,
                sequenceNumber: sequence, timestamp: 1_767_225_600, payload: payload))
    }

    static let osm = EMMPayload.onScreenMessage(
        OnScreenMessage(
            style: .mailbox, durationSeconds: 10,
            start: 1_767_225_600, expiry: 1_767_312_000, text: "hello"))

    mutating func catPackets() -> [UInt8] {
        let table = ConditionalAccessTable(caDescriptors: [CADescriptor(caSystemID: 0x4AE1, caPID: emmPID)])
        return try! cat.packetize([try! table.encoded()])
    }

    mutating func packets(_ sections: [[UInt8]]) -> [UInt8] { try! emm.packetize(sections) }

    /// Cuts TS bytes into datagrams of up to 7 packets.
    static func datagrams(_ ts: [UInt8], packetsPerDatagram: Int = 7) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var offset = 0
        let size = packetsPerDatagram * TS.packetSize
        while offset < ts.count {
            out.append(Array(ts[offset..<min(ts.count, offset + size)]))
            offset += size
        }
        return out
    }
}

/// Just enough pcap for test-162.pcap: classic pcap, Ethernet, IPv4, UDP.
enum PCAP {
    static func udpPayloads(_ file: [UInt8]) -> [[UInt8]] {
        let little = file[0] == 0xD4 || file[0] == 0x4D
        func u32(_ i: Int) -> Int {
            let b = file[i..<(i + 4)].map(Int.init)
            return little ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[3] | b[2] << 8 | b[1] << 16 | b[0] << 24
        }
        var out: [[UInt8]] = []
        var i = 24
        while i + 16 <= file.count {
            let captured = u32(i + 8)
            let frame = Array(file[(i + 16)..<(i + 16 + captured)])
            i += 16 + captured
            var offset = 12
            while Int(frame[offset]) << 8 | Int(frame[offset + 1]) == 0x8100 { offset += 4 }
            guard Int(frame[offset]) << 8 | Int(frame[offset + 1]) == 0x0800 else { continue }
            offset += 2
            guard frame[offset + 9] == 17 else { continue }
            let udp = offset + Int(frame[offset] & 0x0F) * 4
            let length = Int(frame[udp + 4]) << 8 | Int(frame[udp + 5])
            out.append(Array(frame[(udp + 8)..<(udp + length)]))
        }
        return out
    }
}

/// Collects bus events.
final class CollectingSink: MonitorEventSink {
    let events = Mutex<[MonitorEvent]>([])
    func publish(_ event: MonitorEvent) async throws { events.withLock { $0.append(event) } }
}

/// A one-thread HTTP listener on 127.0.0.1: answers each connection with the next status
/// of `statuses` (the last one repeats) and records the request bodies.
final class TinyHTTPListener: Sendable {
    let port: UInt16
    private let fd: Int32
    let requests = Mutex<[String]>([])

    init(statuses: [Int]) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                _ = bind(fd, sa, length)
                _ = listen(fd, 8)
                _ = getsockname(fd, sa, &length)
            }
        }
        self.fd = fd
        port = UInt16(bigEndian: address.sin_port)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let thread = Thread { [self] in
            var index = 0
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                var data: [UInt8] = []
                var buffer = [UInt8](repeating: 0, count: 65536)
                var tv = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                while true {
                    let n = recv(client, &buffer, buffer.count, 0)
                    if n <= 0 { break }
                    data += buffer[0..<n]
                    let text = String(decoding: data, as: UTF8.self)
                    if let headEnd = text.range(of: "\r\n\r\n") {
                        let head = text[..<headEnd.lowerBound].lowercased()
                        let length =
                            head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                            .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
                            ?? 0
                        if text.utf8.distance(from: text.utf8.startIndex, to: headEnd.upperBound) + length <= data.count
                        {
                            break
                        }
                    }
                }
                self.requests.withLock { $0.append(String(decoding: data, as: UTF8.self)) }
                let status = statuses[min(index, statuses.count - 1)]
                index += 1
                let reply = Array("HTTP/1.1 \(status) X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
                _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                Glibc.close(client)
            }
        }
        thread.start()
    }

    func close() { shutdown(fd, Int32(SHUT_RDWR)); Glibc.close(fd) }
}

/// A unique multicast group per test (same process, several suites in parallel).
func testGroup(_ n: Int) -> MulticastGroup {
    let port = 20000 + Int(getpid() % 20000) + n
    return try! MulticastGroup(parsing: "239.255.77.\(n):\(port)")
}

/// A logger whose lines tests can read.
func memoryLogger() -> (Logger, MemorySink) {
    let sink = MemorySink()
    return (Logger(label: "test", minimumLevel: .debug, sink: sink), sink)
}
