import GatehouseTS
import GatehouseTestSupport
import Testing

@Suite("CAT")
struct CATTests {
    @Test func buildAndParse() throws {
        let cat = ConditionalAccessTable(
            versionNumber: 7, caDescriptors: [CADescriptor(caSystemID: 0x4AE1, caPID: 0x0200, privateData: [0xAB])])
        let bytes = try cat.encoded()
        // table_id 0x01, long form, section_length 5 + 7 + 4 = 16, version 7, current.
        #expect(Array(bytes[0..<8]) == Fixtures.hex("01 B0 10 FF FF CF 00 00"))
        #expect(Array(bytes[8..<15]) == Fixtures.hex("09 05 4A E1 E2 00 AB"))
        #expect(CRC32MPEG2.checksum(bytes) == 0)
        #expect(try ConditionalAccessTable(parsing: bytes) == cat)
        var broken = bytes
        broken[9] ^= 1
        #expect(throws: CATError.crcMismatch) { try ConditionalAccessTable(parsing: broken) }
        #expect(throws: CATError.wrongTableID(0x02)) { try ConditionalAccessTable(parsing: [0x02] + bytes.dropFirst()) }
    }
}

@Suite("RTP detection")
struct RTPTests {
    let packets: [UInt8] = (0..<7).flatMap { i in [0x47, 0x1F, 0xFF, 0x10 | UInt8(i)] + [UInt8](repeating: 0xFF, count: 184) }

    @Test func rawTS() throws {
        let decoded = try TSDatagram.decode(packets)
        #expect(decoded.encapsulation == .rawTS)
        #expect(decoded.transportStreamRange == 0..<(7 * 188))
    }

    @Test func rtpWithCSRCExtensionAndPadding() throws {
        // V=2 P=1 X=1 CC=2, M=1 PT=33, seq 0xFFFF, ts, ssrc; 2 CSRCs; extension of 1 word; 3 padding bytes.
        let header = Fixtures.hex("B2 A1 FF FF 00 00 00 01 CA FE BA BE 00000001 00000002 BEDE 0001 12345678")
        let datagram = header + packets + [0, 0, 3]
        let decoded = try TSDatagram.decode(datagram)
        let rtp = try #require(decoded.rtp)
        #expect(rtp.csrcCount == 2 && rtp.hasExtension && rtp.padding && rtp.marker)
        #expect(rtp.payloadType == 33 && rtp.sequenceNumber == 0xFFFF && rtp.ssrc == 0xCAFE_BABE)
        #expect(rtp.headerLength == 28 && rtp.paddingLength == 3)
        #expect(Array(datagram[decoded.transportStreamRange]) == packets)
    }

    @Test func rejectsNonsense() {
        #expect(throws: DatagramError.empty) { try TSDatagram.decode([UInt8]()) }
        #expect(throws: DatagramError.unsupportedRTPVersion(1)) { try TSDatagram.decode([UInt8](repeating: 0x40, count: 200)) }
        #expect(throws: DatagramError.rtpPayloadNotTransportStream(payloadLength: 100)) {
            try TSDatagram.decode(Fixtures.hex("80 21 00 01 00 00 00 00 00 00 00 00") + [UInt8](repeating: 0x47, count: 100))
        }
    }

    @Test func sequenceGapsAndWrap() {
        var tracker = RTPSequenceTracker()
        #expect(tracker.record(65534) == 0)
        #expect(tracker.record(65535) == 0)
        #expect(tracker.record(2) == 2)  // 0 and 1 lost across the wrap
        #expect(tracker.record(1) == 0)  // late
        #expect(tracker.lostDatagrams == 2 && tracker.outOfOrderDatagrams == 1)
    }
}

@Suite("Bit-rate meter")
struct BitRateMeterTests {
    @Test func slidingWindows() {
        var meter = BitRateMeter<UInt16>(maximumWindow: 10_000_000_000, resolution: 100_000_000)
        let second: UInt64 = 1_000_000_000
        // 188 bytes every 10 ms on PID 0x100 for 20 s: 150,400 b/s.
        for k in 0..<2000 { meter.record(0x100, bytes: 188, at: UInt64(k) * 10_000_000) }
        let now = 20 * second - 1
        #expect(meter.bitRate(0x100, window: second, at: now) == 150_400)
        #expect(meter.bitRate(0x100, window: 10 * second, at: now) == 150_400)
        // Silence for 5 s: the 1 s window is empty, the 10 s window holds half.
        let later = 25 * second - 1
        #expect(meter.bitRate(0x100, window: second, at: later) == 0)
        #expect(meter.bitRate(0x100, window: 10 * second, at: later) == 75_200)
        #expect(meter.bitRate(0x200, window: second, at: later) == 0)
        meter.record(0x200, bytes: 1000, at: later)
        #expect(meter.totalBitRate(window: second, at: later) == 8000)
    }
}

@Suite("Demux")
struct DemuxTests {
    @Test func teiPacketsAreCountedAndSkipped() throws {
        var packetizer = SectionPacketizer(pid: 0x0064)
        var stream = try packetizer.packetize([makeSection(tableID: 0x82, total: 300)])
        stream[1] |= 0x80  // TEI on the first packet
        var demux = SectionDemux(pids: [0x0064])
        #expect(demux.sections(in: stream).isEmpty)
        #expect(demux.statistics.transportErrors == 1)
    }

    @Test func gapDropsTheSectionBeingAssembled() throws {
        var packetizer = SectionPacketizer(pid: 0x0064)
        let stream = try packetizer.packetize([makeSection(tableID: 0x82, total: 500), makeSection(tableID: 0x83, total: 10)])
        // Remove the second packet.
        let cut = Array(stream[0..<188] + stream[376...])
        var demux = SectionDemux(pids: [0x0064])
        var events: [String] = []
        demux.feed(cut) { event in
            switch event {
            case .section(let s): events.append("section \(s.tableID)")
            case .continuityError(let e): events.append("cc \(e.packetIndex)")
            default: events.append("other")
            }
        }
        #expect(events == ["cc 1", "section 131"])
    }

    @Test func crcErrorsAreReported() throws {
        var section = try PrivateSection(longFormTableID: 0x84, tableIDExtension: 1, payload: [1, 2, 3, 4]).encoded()
        section[10] ^= 0xFF
        var packetizer = SectionPacketizer(pid: 0x0064)
        var demux = SectionDemux(pids: [0x0064])
        var crc: [UInt8] = []
        demux.feed(try packetizer.packetize([section])) { event in
            if case .crcError(_, let tableID, _) = event { crc.append(tableID) }
        }
        #expect(crc == [0x84])
        #expect(demux.statistics.sections == 0)
    }

    @Test func headerSplitAcrossPackets() throws {
        // Hand-made: a section starts 2 bytes before the end of packet 1, its length byte is in packet 2.
        let a = makeSection(tableID: 0x82, total: 181)
        let b = makeSection(tableID: 0x83, total: 10)
        let p1 = Fixtures.hex("47 40 64 10 00") + a + b[0..<2]
        let p2 = Fixtures.hex("47 00 64 11") + b[2...] + [UInt8](repeating: 0xFF, count: 176)
        var demux = SectionDemux(pids: [0x0064])
        #expect(demux.sections(in: p1 + p2).map(\.bytes) == [a, b])
    }
}
