import GatehouseCore
import GatehouseTS
import Testing

@testable import GatehousePlayout

@Suite("TS output: datagrams, CAT, packing, counters (fake clock)")
struct PlayoutStreamTests {
    func config(rtp: Bool = false, fill: PlayoutConfiguration.Fill = .earlyRepeats) -> PlayoutConfiguration {
        var c = PlayoutConfiguration()
        c.emmPID = 0x0123
        c.caSystemID = 0x4AE1
        c.isRTPEnabled = rtp
        c.fill = fill
        return c
    }

    /// Runs `count` datagrams, one every 10 ms of fake time from `start`.
    func produce(_ stream: inout PlayoutStream, _ carousel: inout EMMCarousel, count: Int, start: Int64 = 0)
        -> [[UInt8]]
    {
        var out: [[UInt8]] = []
        var buffer: [UInt8] = []
        for k in 0..<count {
            if stream.nextDatagram(
                carousel: &carousel, now: start + Int64(k) * 10, rtpTimestamp: UInt32(k * 900),
                into: &buffer) != nil
            {
                out.append(buffer)
            }
        }
        return out
    }

    @Test func datagramsAreSevenPacketsWithCATFirstAndEveryInterval() throws {
        var carousel = EMMCarousel()
        for id in Int64(1)...40 {
            _ = carousel.insert(
                CarouselEMM(
                    id: id, section: testSection(id: id, payload: 30 + Int(id) * 7),
                    firstSendAt: 0, repeatIntervalMilliseconds: 100_000, expiresAt: 1_000_000), now: 0)
        }
        var stream = PlayoutStream(configuration: config())
        let datagrams = produce(&stream, &carousel, count: 200)  // 2 s of fake time
        #expect(datagrams.count == 200)
        #expect(datagrams.allSatisfy { $0.count == 7 * 188 })
        let ts = datagrams.flatMap { $0 }
        // The CAT is the first packet, then every 500 ms (50 datagrams).
        var catAt: [Int] = []
        for (index, d) in datagrams.enumerated() where d[1] & 0x1F == 0 && d[2] == 0x01 { catAt.append(index) }
        #expect(catAt == [0, 50, 100, 150])
        var demux = SectionDemux(pids: [TS.PID.cat, 0x0123])
        let sections = demux.sections(in: ts)
        #expect(demux.statistics.continuityErrors == 0)
        #expect(demux.statistics.crcErrors == 0)
        let cats = sections.filter { $0.pid == TS.PID.cat }
        #expect(cats.count == 4)
        let cat = try ConditionalAccessTable(parsing: cats[0].bytes)
        #expect(cat.caDescriptors == [CADescriptor(caSystemID: 0x4AE1, caPID: 0x0123)])
        // Every EMM once, in id order, byte for byte (nothing is due again within 2 s, and
        // the early fill waits 1 s between repeats of one EMM).
        let emms = sections.filter { $0.pid == 0x0123 }.map(\.bytes)
        #expect(Array(emms.prefix(40)) == (Int64(1)...40).map { testSection(id: $0, payload: 30 + Int($0) * 7) })
        // Early repeats fill spare capacity once each EMM is 1 s old.
        #expect(emms.count > 40)
        #expect(carousel.liveCount == 40)
    }

    @Test func nullPacketsFillWhenConfigured() {
        var carousel = EMMCarousel()
        _ = carousel.insert(
            CarouselEMM(
                id: 1, section: testSection(id: 1), firstSendAt: 0,
                repeatIntervalMilliseconds: 100_000, expiresAt: 1_000_000), now: 0)
        var stream = PlayoutStream(configuration: config(fill: .nullPackets))
        let datagrams = produce(&stream, &carousel, count: 3)
        #expect(datagrams.count == 3)
        let pids = datagrams[0].chunked188.map { UInt16($0[1] & 0x1F) << 8 | UInt16($0[2]) }
        #expect(pids == [0x0001, 0x0123, 0x1FFF, 0x1FFF, 0x1FFF, 0x1FFF, 0x1FFF])
        #expect(datagrams[1].chunked188.allSatisfy { $0[1] == 0x1F && $0[2] == 0xFF })
        #expect(datagrams[0].chunked188[2] == PlayoutStream.nullPacket)
    }

    @Test func nothingSentWhenIdleAndFillIsNone() {
        var carousel = EMMCarousel()
        var stream = PlayoutStream(configuration: config(fill: .none))
        var buffer: [UInt8] = []
        #expect(stream.nextDatagram(carousel: &carousel, now: 0, into: &buffer) != nil)  // the CAT, padded
        #expect(stream.nextDatagram(carousel: &carousel, now: 10, into: &buffer) == nil)
        #expect(buffer.isEmpty)
    }

    @Test func rtpHeaderVersionTypeSequenceTimestampSSRC() throws {
        var carousel = EMMCarousel()
        var stream = PlayoutStream(
            configuration: config(rtp: true),
            state: PlayoutStreamState(rtpSequenceNumber: 0xFFFE, rtpSSRC: 0xDEAD_BEEF))
        let datagrams = produce(&stream, &carousel, count: 3)
        for (k, d) in datagrams.enumerated() {
            #expect(d.count == 12 + 7 * 188)
            let decoded = try TSDatagram.decode(d)
            let rtp = try #require(decoded.rtp)
            #expect(rtp.version == 2)
            #expect(rtp.payloadType == 33)
            #expect(rtp.sequenceNumber == UInt16(truncatingIfNeeded: 0xFFFE + k))
            #expect(rtp.timestamp == UInt32(k * 900))
            #expect(rtp.ssrc == 0xDEAD_BEEF)
            #expect(decoded.packetCount == 7)
        }
    }

    @Test func largeSectionSpansDatagramsAndCountersCarryOnAcrossRestart() {
        var carousel = EMMCarousel()
        let big = testSection(id: 9, payload: 2000)  // 12 packets
        _ = carousel.insert(
            CarouselEMM(
                id: 9, section: big, firstSendAt: 0, repeatIntervalMilliseconds: 30,
                expiresAt: 1_000_000), now: 0)
        var first = PlayoutStream(configuration: config(fill: .nullPackets))
        var datagrams = produce(&first, &carousel, count: 7)
        // Restart: a new stream value from the old one's state; carried packets are dropped
        // with it and the counter rewinds, so the receiver sees no continuity error.
        var second = PlayoutStream(configuration: config(fill: .nullPackets), state: first.state)
        datagrams += produce(&second, &carousel, count: 20, start: 70)
        var demux = SectionDemux(pids: [TS.PID.cat, 0x0123])
        let sections = demux.sections(in: datagrams.flatMap { $0 })
        #expect(demux.statistics.continuityErrors == 0)
        let emms = sections.filter { $0.pid == 0x0123 }
        #expect(emms.count >= 3)
        #expect(emms.allSatisfy { $0.bytes == big })
    }
}

extension Array where Element == UInt8 {
    /// The 188-byte packets of a raw TS buffer.
    var chunked188: [[UInt8]] {
        stride(from: 0, to: count, by: 188).map { Array(self[$0..<Swift.min($0 + 188, count)]) }
    }
}
