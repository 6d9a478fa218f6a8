import GatehouseTS
import GatehouseTestSupport
import Testing

/// A short-form private section of `total` bytes whose data bytes count up from `seed`.
func makeSection(tableID: UInt8, total: Int, seed: UInt8 = 0) -> [UInt8] {
    let length = total - 3
    var s: [UInt8] = [tableID, 0x70 | UInt8(length >> 8), UInt8(length & 0xFF)]
    for i in 0..<length { s.append(seed &+ UInt8(truncatingIfNeeded: i)) }
    return s
}

@Suite("CRC-32/MPEG-2")
struct CRCTests {
    @Test func checkValue() {
        #expect(CRC32MPEG2.checksum(Array("123456789".utf8)) == 0x0376_E6E7)
    }

    @Test func sectionWithItsCRCGivesZero() throws {
        let section = try PrivateSection(longFormTableID: 0x82, tableIDExtension: 7, payload: [1, 2, 3]).encoded()
        #expect(CRC32MPEG2.checksum(section) == 0)
    }
}

@Suite("Section packetizer, byte for byte")
struct PacketizerTests {
    @Test func sectionSpanningThreePackets() throws {
        let section = makeSection(tableID: 0x82, total: 400)
        #expect(Array(section[0..<3]) == [0x82, 0x71, 0x8D])  // section_length 397
        var packetizer = SectionPacketizer(pid: 0x0100)
        let out = try packetizer.packetize([section])
        // Packet 1: PUSI, PID 0x0100, payload only, CC 0, pointer_field 0, section bytes 0..<183.
        let p1 = Fixtures.hex("47 41 00 10 00") + section[0..<183]
        // Packet 2: no PUSI, CC 1, section bytes 183..<367.
        let p2 = Fixtures.hex("47 01 00 11") + section[183..<367]
        // Packet 3: no PUSI, CC 2, the last 33 bytes, then 151 bytes of 0xFF stuffing.
        let p3 = Fixtures.hex("47 01 00 12") + section[367..<400] + [UInt8](repeating: 0xFF, count: 151)
        #expect(p1.count == 188 && p2.count == 188 && p3.count == 188)
        #expect(out == p1 + p2 + p3)
        #expect(packetizer.continuityCounter == 3)
        #expect(SectionPacketizer.packetCount(sectionSizes: [400], packing: .backToBack) == 3)
    }

    @Test func packetStartingASecondSectionAfterATail() throws {
        let a = makeSection(tableID: 0x82, total: 200, seed: 0x10)
        let b = makeSection(tableID: 0x83, total: 20, seed: 0x80)
        var packetizer = SectionPacketizer(pid: 0x0064, packing: .backToBack)
        let out = try packetizer.packetize([a, b])
        let p1 = Fixtures.hex("47 40 64 10 00") + a[0..<183]
        // pointer_field 17: the 17-byte tail of A, then B's header in the same packet.
        let p2 = Fixtures.hex("47 40 64 11 11") + a[183..<200] + b + [UInt8](repeating: 0xFF, count: 146)
        #expect(out == p1 + p2)
        #expect(Array(out[188 + 5 + 17..<188 + 5 + 20]) == [0x83, 0x70, 0x11])
    }

    @Test func twoSectionsStartingInOnePacket() throws {
        let a = makeSection(tableID: 0x82, total: 10)
        let b = makeSection(tableID: 0x84, total: 20)
        var packetizer = SectionPacketizer(pid: 0x1FF0)
        let out = try packetizer.packetize([a, b])
        let expected = Fixtures.hex("47 5F F0 10 00") + a + b + [UInt8](repeating: 0xFF, count: 153)
        #expect(out == expected)
    }

    @Test func packetPerSectionStuffsEachSection() throws {
        let a = makeSection(tableID: 0x82, total: 10)
        let b = makeSection(tableID: 0x84, total: 20)
        var packetizer = SectionPacketizer(pid: 0x0064, packing: .packetPerSection)
        let out = try packetizer.packetize([a, b])
        let p1 = Fixtures.hex("47 40 64 10 00") + a + [UInt8](repeating: 0xFF, count: 173)
        let p2 = Fixtures.hex("47 40 64 11 00") + b + [UInt8](repeating: 0xFF, count: 163)
        #expect(out == p1 + p2)
    }

    @Test func tailTooLongForANewHeaderEndsWithStuffing() throws {
        // A tail of 182 bytes leaves 1 byte after a pointer_field: no room for a 3-byte header.
        let a = makeSection(tableID: 0x82, total: 183 + 182)
        let b = makeSection(tableID: 0x83, total: 5)
        var packetizer = SectionPacketizer(pid: 0x0064)
        let out = try packetizer.packetize([a, b])
        let p1 = Fixtures.hex("47 40 64 10 00") + a[0..<183]
        let p2 = Fixtures.hex("47 00 64 11") + a[183..<365] + [0xFF, 0xFF]
        let p3 = Fixtures.hex("47 40 64 12 00") + b + [UInt8](repeating: 0xFF, count: 178)
        #expect(out == p1 + p2 + p3)
        #expect(SectionPacketizer.packetCount(sectionSizes: [365, 5], packing: .backToBack) == 3)
    }

    @Test func continuityCounterWrapsAndSurvivesBursts() throws {
        var packetizer = SectionPacketizer(pid: 0x0064, continuityCounter: 14)
        let out = try packetizer.packetize([makeSection(tableID: 0x82, total: 500)])
        #expect(out.count == 3 * 188)
        #expect([out[3], out[188 + 3], out[376 + 3]] == [0x1E, 0x1F, 0x10])  // 14, 15, 0
        let next = try packetizer.packetize([makeSection(tableID: 0x82, total: 4)])
        #expect(next[3] == 0x11)
        // A restarted packetizer picks the counter up where it was.
        var restarted = SectionPacketizer(pid: 0x0064)
        restarted.continuityCounter = packetizer.continuityCounter
        #expect(try restarted.packetize([makeSection(tableID: 0x82, total: 4)])[3] == 0x12)
    }

    @Test func rejectsAMalformedSection() {
        var packetizer = SectionPacketizer(pid: 0x0064)
        #expect(throws: SectionError.truncated(needed: 10, available: 5)) {
            try packetizer.packetize([[0x82, 0x70, 0x07, 0, 0]])
        }
        #expect(throws: SectionError.invalidTableID(0xFF)) { try packetizer.packetize([[0xFF, 0x70, 0x00]]) }
    }

    @Test func packetizedSectionsComeBackOutOfTheDemux() throws {
        var sections: [[UInt8]] = []
        for i in 0..<40 {
            sections.append(try PrivateSection(longFormTableID: UInt8(0x82 + i % 14), tableIDExtension: UInt16(i),
                payload: [UInt8](repeating: UInt8(i), count: (i * 37) % 700)).encoded())
            sections.append(makeSection(tableID: 0x8F, total: 3 + i))
        }
        for packing in [SectionPacketizer.Packing.backToBack, .packetPerSection] {
            var packetizer = SectionPacketizer(pid: 0x0123, continuityCounter: 9, packing: packing)
            let stream = try packetizer.packetize(Array(sections[0..<30])) + packetizer.packetize(Array(sections[30...]))
            var demux = SectionDemux(pids: [0x0123])
            let got = demux.sections(in: stream)
            #expect(got.map(\.bytes) == sections)
            #expect(demux.statistics.continuityErrors == 0)
            #expect(demux.statistics.crcErrors == 0)
        }
    }
}

@Suite("Packets and adaptation fields")
struct PacketTests {
    @Test func headerFieldsAreNamedAfterTheSpec() throws {
        let packet = try TSPacket(
            pid: 0x1ABC, payloadUnitStartIndicator: true, continuityCounter: 5, transportPriority: true,
            transportScramblingControl: 2, payload: [1, 2, 3])
        #expect(Array(packet.bytes[0..<7]) == [0x47, 0x7A, 0xBC, 0x95, 1, 2, 3])
        #expect(packet.syncByte == 0x47)
        #expect(packet.payloadUnitStartIndicator && packet.transportPriority && !packet.transportErrorIndicator)
        #expect(packet.pid == 0x1ABC)
        #expect(packet.transportScramblingControl == 2)
        #expect(packet.adaptationFieldControl == 1)
        #expect(packet.continuityCounter == 5)
        #expect(packet.header.pid == 0x1ABC)
    }

    @Test func pcrRoundTripsAndParses() throws {
        let pcr = PCR(base: 0x1_2345_6789, extension: 0x123)
        let field = AdaptationField(discontinuityIndicator: true, randomAccessIndicator: true, pcr: pcr)
        let packet = try TSPacket(
            pid: 0x100, continuityCounter: 0, adaptationField: field, payload: [0xAA], stuffing: .adaptationField)
        // adaptation_field_length 182: flags, 6 PCR bytes, 175 stuffing; then one payload byte.
        #expect(Array(packet.bytes[0..<12]) == Fixtures.hex("47 01 00 30 B6 D0 91 A2 B3 C4 FF 23"))
        #expect(packet.bytes[187] == 0xAA)
        let parsed = try #require(packet.adaptationField)
        #expect(parsed.pcr == pcr)
        #expect(parsed.discontinuityIndicator && parsed.randomAccessIndicator)
        #expect(parsed.stuffingCount == 175)
        #expect(pcr.value == 0x1_2345_6789 * 300 + 0x123)
        #expect(Array(packet.payload) == [0xAA])
    }

    @Test func shortAdaptationStuffing() throws {
        // 183 payload bytes: a 1-byte adaptation field (length 0).
        let p = try TSPacket(pid: 1, continuityCounter: 0, payload: [UInt8](repeating: 7, count: 183), stuffing: .adaptationField)
        #expect(Array(p.bytes[3..<5]) == [0x30, 0x00])
        // 182 payload bytes: length 1 with an all-zero flags byte.
        let q = try TSPacket(pid: 1, continuityCounter: 0, payload: [UInt8](repeating: 7, count: 182), stuffing: .adaptationField)
        #expect(Array(q.bytes[3..<6]) == [0x30, 0x01, 0x00])
        #expect(q.payload.count == 182)
    }

    @Test func rejectsWhatIsNotAPacket() {
        #expect(throws: TSPacketError.wrongSize(187)) { try TSPacket(bytes: [UInt8](repeating: 0x47, count: 187)) }
        #expect(throws: TSPacketError.missingSyncByte(found: 0)) { try TSPacket(bytes: [UInt8](repeating: 0, count: 188)) }
    }
}
