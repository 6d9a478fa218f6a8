import Foundation
import GatehouseTS
import GatehouseTestSupport
import Testing

/// Every sample in ../shared/samples against its README answer.
@Suite("Real captures")
struct SampleTests {
    @Test func psiCAT() throws {
        let bytes = try Fixtures.sample("psi_cat_r3.ts")
        var demux = SectionDemux(pids: [TS.PID.cat])
        let sections = demux.sections(in: bytes)
        #expect(sections.count == 1)
        #expect(demux.statistics.crcErrors == 0)
        let cat = try ConditionalAccessTable(parsing: try #require(sections.first).bytes)
        #expect(cat.versionNumber == 4)
        #expect(cat.currentNextIndicator)
        #expect(cat.caDescriptors.count == 1)
        let ca = try #require(cat.caDescriptors.first)
        #expect(ca.caSystemID == 0x0100)
        #expect(ca.caPID == 0x00C1)
        #expect(ca.privateData == Fixtures.hex("03 E0C2 0156 E0C3 0157 E0C4 015A"))
        #expect(cat.emmPIDs == [0x00C1])
        // Rebuilding it gives the same section bytes, CRC included.
        #expect(try cat.encoded() == sections[0].bytes)
    }

    @Test func simulcryptEMMPackets() throws {
        let bytes = try Fixtures.sample("test-105.1.ts")
        let packets = try TSPacket.packets(in: bytes)
        #expect(packets.count == 2)
        #expect(packets.allSatisfy { $0.pid == 0x0064 })
        #expect(packets[1].payloadUnitStartIndicator)
        #expect(packets[1].payload.first == 123)  // pointer_field of the second packet
        var demux = SectionDemux(pids: [0x0064])
        let sections = demux.sections(in: bytes)
        #expect(sections.map(\.tableID) == [0x85, 0x86, 0x87])
        // Whole section sizes 103, 203, 27 (data bytes 100, 200, 24 as in test-105.xml).
        #expect(sections.map(\.bytes.count) == [103, 203, 27])
        #expect(demux.statistics.continuityErrors == 0)
        #expect(demux.statistics.malformedSections == 0)
        let expected = try xmlTables(String(decoding: Fixtures.sample("test-105.xml"), as: UTF8.self))
        #expect(expected.count == 3)
        for (section, table) in zip(sections, expected) {
            #expect(section.tableID == table.tableID)
            #expect(Array(section.bytes[3...]) == table.payload)
        }
        // Back-to-back packing of the same sections reproduces the generator's packets exactly.
        var packetizer = SectionPacketizer(pid: 0x0064, continuityCounter: 0, packing: .backToBack)
        #expect(try packetizer.packetize(sections.map(\.bytes)) == bytes)
    }

    @Test func continuityEdgeCases() throws {
        let errors = try continuityErrors(in: Fixtures.sample("test-041.ts"))
        #expect(errors.count == 3)
        #expect(errors.map(\.packetIndex) == [9, 11, 20])
        #expect(errors.map(\.pid) == [0x007B, 0x007B, 0x0064])
        #expect(errors[0].kind == .repeatedPacket)
        #expect(errors[1].kind == .missingPackets(count: 10))
        #expect(errors[2].kind == .advancedWithoutPayload(expected: 6, found: 7))
    }

    @Test func continuityGaps() throws {
        let errors = try continuityErrors(in: Fixtures.sample("test-024.ts"))
        #expect(errors.map(\.packetIndex) == [10, 20])
        #expect(errors.map(\.pid) == [0x00D2, 0x00D2])
        #expect(errors.map(\.kind) == [.missingPackets(count: 3), .missingPackets(count: 7)])
    }

    @Test func rtpCaptureStripsToTheTSFile() throws {
        let datagrams = try PCAP.udpPayloads(Fixtures.sample("test-162.pcap"))
        #expect(datagrams.count == 16)
        var ts: [UInt8] = []
        var tracker = RTPSequenceTracker()
        var sequences: [UInt16] = []
        for datagram in datagrams {
            #expect(datagram.destinationPort == 2000)
            let decoded = try TSDatagram.decode(datagram.payload)
            let rtp = try #require(decoded.rtp)
            #expect(rtp.version == 2 && rtp.payloadType == 33 && rtp.headerLength == 12)
            #expect(decoded.packetCount == 7)
            sequences.append(rtp.sequenceNumber)
            #expect(tracker.record(rtp.sequenceNumber) == 0)
            ts += datagram.payload[decoded.transportStreamRange]
        }
        #expect(sequences == Array(29718...29733))
        #expect(tracker.lostDatagrams == 0)
        #expect(ts == (try Fixtures.sample("test-162.1.ts")))
        var counts: [UInt16: Int] = [:]
        for packet in try TSPacket.packets(in: ts) { counts[packet.pid, default: 0] += 1 }
        #expect(counts == [0x0065: 104, 0x00C8: 2, 0x00C9: 2, 0x00CA: 2, 0x00CB: 2])
    }

    func continuityErrors(in bytes: [UInt8]) -> [ContinuityError] {
        var demux = SectionDemux()
        var errors: [ContinuityError] = []
        demux.feed(bytes) { event in
            if case .continuityError(let error) = event { errors.append(error) }
        }
        return errors
    }

    /// The `generic_short_table` elements of TSDuck's XML: table_id and hex payload.
    func xmlTables(_ xml: String) throws -> [(tableID: UInt8, payload: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        for chunk in xml.components(separatedBy: "<generic_short_table table_id=\"0x").dropFirst() {
            let id = try #require(UInt8(String(chunk.prefix(2)), radix: 16))
            let body = try #require(chunk.components(separatedBy: ">").dropFirst().first)
            let hex = body.components(separatedBy: "<")[0]
            out.append((id, Fixtures.hex(hex)))
        }
        return out
    }
}

/// Just enough pcap to read the samples: classic pcap, Ethernet, optional 802.1Q tags, IPv4, UDP.
enum PCAP {
    struct Datagram {
        var destinationPort: UInt16
        var payload: [UInt8]
    }

    struct Malformed: Error { var what: String }

    static func udpPayloads(_ file: [UInt8]) throws -> [Datagram] {
        guard file.count >= 24 else { throw Malformed(what: "no global header") }
        let magic = UInt32(file[0]) | UInt32(file[1]) << 8 | UInt32(file[2]) << 16 | UInt32(file[3]) << 24
        let little: Bool
        switch magic {
        case 0xA1B2_C3D4, 0xA1B2_3C4D: little = true
        case 0xD4C3_B2A1, 0x4D3C_B2A1: little = false
        default: throw Malformed(what: "magic \(magic)")
        }
        func u32(_ i: Int) -> Int {
            let b = file[i..<(i + 4)].map(Int.init)
            return little ? b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24 : b[3] | b[2] << 8 | b[1] << 16 | b[0] << 24
        }
        guard u32(20) == 1 else { throw Malformed(what: "link type \(u32(20)) is not Ethernet") }
        var out: [Datagram] = []
        var i = 24
        while i + 16 <= file.count {
            let captured = u32(i + 8)
            let start = i + 16
            guard start + captured <= file.count else { throw Malformed(what: "truncated record") }
            let frame = Array(file[start..<(start + captured)])
            i = start + captured
            var offset = 12
            var etherType = Int(frame[offset]) << 8 | Int(frame[offset + 1])
            while etherType == 0x8100 || etherType == 0x88A8 {
                offset += 4
                etherType = Int(frame[offset]) << 8 | Int(frame[offset + 1])
            }
            offset += 2
            guard etherType == 0x0800 else { continue }
            let ihl = Int(frame[offset] & 0x0F) * 4
            let totalLength = Int(frame[offset + 2]) << 8 | Int(frame[offset + 3])
            guard frame[offset + 9] == 17 else { continue }
            let udp = offset + ihl
            let port = UInt16(frame[udp + 2]) << 8 | UInt16(frame[udp + 3])
            let udpLength = Int(frame[udp + 4]) << 8 | Int(frame[udp + 5])
            guard udpLength >= 8, udp + udpLength <= offset + totalLength else { throw Malformed(what: "UDP length") }
            out.append(Datagram(destinationPort: port, payload: Array(frame[(udp + 8)..<(udp + udpLength)])))
        }
        return out
    }
}
