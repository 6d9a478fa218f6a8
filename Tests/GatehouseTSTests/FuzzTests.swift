import GatehouseTS
import GatehouseTestSupport
import Testing

/// Random and truncated bytes into every parser: nothing may crash or hang.
@Suite("Fuzzing", .timeLimit(.minutes(1)))
struct FuzzTests {
    func randomBytes(_ n: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    @Test func randomInputNeverCrashes() {
        var rng = SplitMix64(seed: 0x6A7E_4005)
        for round in 0..<3000 {
            let n = Int.random(in: 0...600, using: &rng)
            var bytes = randomBytes(n, &rng)
            if round % 2 == 0 && n > 0 { bytes[0] = 0x47 }
            _ = try? TSPacket(bytes: bytes)
            _ = try? PrivateSection(parsing: bytes)
            _ = try? ConditionalAccessTable(parsing: bytes)
            if round % 3 == 0 && n > 3 { bytes[0] = 0x01; bytes[1] |= 0x80 }
            _ = try? ConditionalAccessTable(parsing: bytes)
            _ = try? TSDatagram.decode(bytes)
            if n >= 188 {
                bytes.withUnsafeBytes { raw in
                    _ = AdaptationField(packet: raw)
                    _ = AdaptationField.pcr(packet: raw)
                    _ = TSPacketHeader.payloadRange(packet: raw)
                }
            }
        }
    }

    @Test func demuxSurvivesGarbagePackets() {
        var rng = SplitMix64(seed: 42)
        var demux = SectionDemux(pids: [0x0000, 0x0001, 0x0064, 0x1FFF])
        var events = 0
        for _ in 0..<20_000 {
            var packet = randomBytes(188, &rng)
            packet[0] = 0x47
            // Keep to a few PIDs so sections get assembled and continuity gets checked.
            packet[1] = (packet[1] & 0xE0) | 0x00
            packet[2] = [0x00, 0x01, 0x64, 0x65][Int.random(in: 0..<4, using: &rng)]
            if Bool.random(using: &rng) { packet[4] = UInt8.random(in: 0...20, using: &rng) }
            demux.feed(packet) { _ in events += 1 }
        }
        #expect(demux.statistics.packets == 20_000)
        #expect(events > 0)
    }

    @Test func mutatedRealStreams() throws {
        var rng = SplitMix64(seed: 7)
        let samples = try ["test-105.1.ts", "psi_cat_r3.ts", "test-041.ts", "test-162.1.ts"].map(Fixtures.sample)
        for _ in 0..<2000 {
            var bytes = samples[Int.random(in: 0..<samples.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            let cut = Int.random(in: 0...bytes.count, using: &rng)
            var demux = SectionDemux(pids: [0x0001, 0x0064, 0x007B, 0x0065])
            for section in demux.sections(in: Array(bytes[0..<cut])) {
                _ = try? ConditionalAccessTable(parsing: section.bytes)
                _ = try? PrivateSection(parsing: section.bytes)
            }
            _ = try? TSPacket.packets(in: bytes[0..<cut])
        }
    }

    @Test func truncatedSectionsAndCATs() throws {
        let cat = try ConditionalAccessTable(caDescriptors: [CADescriptor(caSystemID: 1, caPID: 2, privateData: [3, 4])]).encoded()
        let section = try PrivateSection(longFormTableID: 0x82, tableIDExtension: 1, payload: [1, 2, 3]).encoded()
        for n in 0..<cat.count { #expect(throws: CATError.self) { try ConditionalAccessTable(parsing: cat[0..<n]) } }
        for n in 0..<section.count { #expect(throws: SectionError.self) { try PrivateSection(parsing: section[0..<n]) } }
    }
}
