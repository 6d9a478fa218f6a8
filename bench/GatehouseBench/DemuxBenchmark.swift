import Foundation
import GatehouseTS

/// `gatehouse-bench demux`: section reassembly over a TS held in memory, one thread.
/// Prints plain lines: what was demultiplexed, how many sections, and Gbit/s.
func runDemuxBenchmark() {
    // 1. A realistic EMM stream: ~80 MB on 4 EMM PIDs, long-form EMMs of 60–600 bytes with
    //    CRC-32, packed back to back as EMM generators do, plus a CAT.
    var rng = BenchRandom(state: 0x00DE_4D55)
    var stream: [UInt8] = []
    stream.reserveCapacity(84_000_000)
    let emmPIDs: [UInt16] = [0x0200, 0x0201, 0x0202, 0x0203]
    var packetizers = emmPIDs.map { SectionPacketizer(pid: $0) }
    var catPacketizer = SectionPacketizer(pid: TS.PID.cat)
    let cat = try! ConditionalAccessTable(caDescriptors: emmPIDs.map { CADescriptor(caSystemID: 0x4AE1, caPID: $0) })
        .encoded()
    var sectionCount = 0
    var catCount = 0
    while stream.count < 80_000_000 {
        try! catPacketizer.packetize([cat], into: &stream)
        catCount += 1
        for (k, _) in emmPIDs.enumerated() {
            var burst: [[UInt8]] = []
            for _ in 0..<7 {
                let size = 60 + Int(rng.next() % 540)
                let payload = (0..<size).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                burst.append(
                    try! PrivateSection(
                        longFormTableID: UInt8(0x82 + rng.next() % 14), tableIDExtension: UInt16(truncatingIfNeeded: rng.next()),
                        payload: payload
                    ).encoded())
            }
            sectionCount += burst.count
            try! packetizers[k].packetize(burst, into: &stream)
        }
    }
    measure(
        label: "EMM stream (4 PIDs, 60-600 B long-form sections with CRC, back to back)", stream: stream,
        pids: [TS.PID.cat] + emmPIDs, note: "generated \(sectionCount) EMM + \(catCount) CAT sections")

    // 2. A live capture (test-025.ts, 4.96 Mbit/s single programme) repeated to ~90 MB:
    //    the demux sees every packet, reassembles PAT, SDT and PMT sections, checks all counters.
    let samples = ProcessInfo.processInfo.environment["GATEHOUSE_SAMPLES_DIR"] ?? "../shared/samples"
    if let sample = FileManager.default.contents(atPath: samples + "/test-025.ts") {
        let once = [UInt8](sample)
        var live: [UInt8] = []
        live.reserveCapacity(once.count * 50)
        for _ in 0..<50 { live += once }
        measure(
            label: "test-025.ts x50 (PSI on 0x0000, 0x0011, 0x0100, 0x0810; video/audio passed over)", stream: live,
            pids: [0x0000, 0x0011, 0x0100, 0x0810],
            note: "the errors are continuity jumps where one copy of the capture meets the next")
    } else {
        print("demux: test-025.ts not found under \(samples) (set GATEHOUSE_SAMPLES_DIR); skipped")
    }
}

private func measure(label: String, stream: [UInt8], pids: [UInt16], note: String) {
    var best = Double.infinity
    var sections = 0
    var errors = 0
    var bytesSeen = 0
    for _ in 0..<5 {
        var demux = SectionDemux(pids: pids)
        var seen = 0
        let start = DispatchTime.now().uptimeNanoseconds
        stream.withUnsafeBytes { raw in
            demux.feed(raw) { event in
                if case .section(let s) = event { seen &+= s.bytes.count }
            }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        best = min(best, elapsed)
        sections = demux.statistics.sections
        errors = demux.statistics.continuityErrors + demux.statistics.crcErrors + demux.statistics.malformedSections
        bytesSeen = seen
    }
    let megabytes = Double(stream.count) / 1e6
    let gbps = Double(stream.count) * 8 / best / 1e9
    print("demux: \(label)")
    print(
        "demux:   \(String(format: "%.1f", megabytes)) MB, \(stream.count / 188) packets, \(sections) sections "
            + "(\(bytesSeen) section bytes), \(errors) errors; \(note)")
    print("demux:   best of 5: \(String(format: "%.3f", best)) s = \(String(format: "%.2f", gbps)) Gbit/s per core")
}

/// xorshift64*: deterministic test data without Foundation's generator.
private struct BenchRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}
