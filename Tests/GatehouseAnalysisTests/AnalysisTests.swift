import Foundation
import GatehouseAnalysis
import GatehouseCLI
import GatehouseTS
import GatehouseTestSupport
import Testing

@Suite("Capture analysis")
struct AnalysisTests {
    @Test func pcrBitRateOfALiveStream() throws {
        let report = try CaptureAnalyzer.analyze(try Fixtures.sample("test-025.ts"))
        #expect(report.packets == 9751)
        #expect(report.bitRate.source == .pcr)
        let rate = try #require(report.bitRate.bitsPerSecond)
        #expect(abs(rate - 4_963_330) / 4_963_330 < 0.001)
        let expected: [UInt16: Double] = [
            0x0000: 15_779, 0x0011: 16_288, 0x0100: 44_284, 0x0810: 15_779, 0x1000: 4_620_259, 0x1001: 250_941,
        ]
        #expect(report.pids.map(\.pid.value) == expected.keys.sorted())
        for (pid, bps) in expected {
            let got = try #require(report.pid(pid)?.bitRate)
            #expect(abs(got - bps) / bps < 0.001, "PID \(pid)")
        }
        #expect(report.pid(0x0100)?.hasPCR == true)
        #expect(report.continuityErrors.isEmpty)
    }

    @Test func catAndEMMPIDs() throws {
        let report = try CaptureAnalyzer.analyze(try Fixtures.sample("psi_cat_r3.ts"))
        let cat = try #require(report.cat)
        #expect(cat.versionNumber == 4)
        #expect(cat.caDescriptors.map(\.caSystemID) == [0x0100])
        #expect(report.emmPIDs.map(\.value) == [0x00C1])
        #expect(report.crcErrors.isEmpty)
        #expect(report.bitRate.source == .unknown)
    }

    @Test func continuityErrorsWithPacketIndices() throws {
        let r41 = try CaptureAnalyzer.analyze(try Fixtures.sample("test-041.ts"))
        #expect(r41.continuityErrors.map(\.packetIndex) == [9, 11, 20])
        #expect(r41.continuityErrors.map(\.pid.value) == [0x7B, 0x7B, 0x64])
        let r24 = try CaptureAnalyzer.analyze(try Fixtures.sample("test-024.ts"))
        #expect(r24.continuityErrors.map(\.packetIndex) == [10, 20])
        #expect(r24.continuityErrors.map(\.missingPackets) == [3, 7])
    }

    @Test func emmSectionsPerTableID() throws {
        // CAT announcing PID 0x0300, then EMMs of two table_ids, one with a broken CRC.
        var catPacketizer = SectionPacketizer(pid: TS.PID.cat)
        var emmPacketizer = SectionPacketizer(pid: 0x0300)
        let cat = try ConditionalAccessTable(versionNumber: 3, caDescriptors: [CADescriptor(caSystemID: 0x4AE1, caPID: 0x0300)])
        var broken = try PrivateSection(longFormTableID: 0x83, tableIDExtension: 9, payload: [9, 9]).encoded()
        broken[9] ^= 0x55
        let emms = [
            try PrivateSection(longFormTableID: 0x82, tableIDExtension: 1, payload: [UInt8](repeating: 1, count: 300)).encoded(),
            try PrivateSection(longFormTableID: 0x82, tableIDExtension: 2, payload: [UInt8](repeating: 2, count: 50)).encoded(),
            try PrivateSection(longFormTableID: 0x83, tableIDExtension: 3, payload: [UInt8](repeating: 3, count: 10)).encoded(),
            broken,
        ]
        let stream = try catPacketizer.packetize([cat.encoded()]) + emmPacketizer.packetize(emms)
        let report = try CaptureAnalyzer.analyze(stream, options: AnalysisOptions(bitRate: 1_000_000))
        #expect(report.emmPIDs.map(\.value) == [0x0300])
        #expect(report.emmTables.map(\.tableID) == [0x82, 0x83])
        #expect(report.emmTables.map(\.sections) == [2, 1])
        #expect(report.emmTables.map(\.bytes) == [312 + 62, 22])
        #expect(report.crcErrors.map(\.tableID) == [0x83])
        #expect(report.crcErrors.map(\.packetIndex) == [3])
        #expect(report.bitRate.source == .user)
        #expect(report.pid(0x0300)?.bitRate == 750_000)
    }

    @Test func notATransportStream() {
        #expect(throws: AnalysisError.empty) { try CaptureAnalyzer.analyze([]) }
        #expect(throws: AnalysisError.self) { try CaptureAnalyzer.analyze(Array("hello world".utf8)) }
        #expect(throws: AnalysisError.self) { try CaptureAnalyzer.analyze([UInt8](repeating: 0, count: 1000)) }
    }

    @Test(.timeLimit(.minutes(1))) func fuzzedCapturesNeverCrash() throws {
        var state: UInt64 = 99
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        let base = try Fixtures.sample("test-041.ts") + Fixtures.sample("psi_cat_r3.ts") + Fixtures.sample("test-105.1.ts")
        for _ in 0..<500 {
            var bytes = Array(base[0..<Int(next() % UInt64(base.count + 1))])
            for _ in 0..<(next() % 20) where !bytes.isEmpty { bytes[Int(next() % UInt64(bytes.count))] = UInt8(next() & 0xFF) }
            _ = try? CaptureAnalyzer.analyze(bytes)
        }
    }
}

@Suite("gatehouse analyze")
struct AnalyzeCommandTests {
    final class Output: @unchecked Sendable {
        // Only touched from the one task that runs the command.
        var out = ""
        var err = ""
    }

    func run(_ arguments: [String]) async -> (Int32, Output) {
        let output = Output()
        let context = CommandContext(
            standardOutput: { output.out += $0 }, standardError: { output.err += $0 },
            logger: CommandContext.live().logger)
        let status = await GatehouseCommand.main(arguments: ["analyze"] + arguments, context: context)
        return (status, output)
    }

    @Test func humanTable() async throws {
        let path = Fixtures.samplesDirectory.appendingPathComponent("test-025.ts").path
        let (status, output) = await run([path])
        #expect(status == 0)
        #expect(output.out.contains("TS bit rate: 4,963,330 b/s (from PCRs)"))
        #expect(output.out.contains("0x1000 (4096)       9077     4,620,259"))
    }

    @Test func jsonHasStableKeys() async throws {
        let path = Fixtures.samplesDirectory.appendingPathComponent("psi_cat_r3.ts").path
        let (status, output) = await run([path, "--json"])
        #expect(status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.out.utf8)) as? [String: Any])
        let emm = try #require(object["emm_pids"] as? [[String: Any]])
        #expect(emm.first?["value"] as? Int == 0xC1)
        #expect(emm.first?["hex"] as? String == "0x00C1")
        let cat = try #require(object["cat"] as? [String: Any])
        #expect(cat["version_number"] as? Int == 4)
    }

    @Test func clearErrors() async {
        let (missing, o1) = await run(["/nonexistent/capture.ts"])
        #expect(missing == 1)
        #expect(o1.err.contains("no such file"))
        let readme = Fixtures.samplesDirectory.appendingPathComponent("README.md").path
        let (notTS, o2) = await run([readme])
        #expect(notTS == 1)
        #expect(o2.err.contains("not an MPEG transport stream"))
        let (usage, o3) = await run([])
        #expect(usage == 64)
        #expect(o3.err.contains("usage: gatehouse analyze"))
        let (badRate, _) = await run([readme, "--bitrate", "fast"])
        #expect(badRate == 64)
    }
}
