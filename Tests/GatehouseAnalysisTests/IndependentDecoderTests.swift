import Foundation
import GatehouseTS
import GatehouseTestSupport
import Testing

/// Gatehouse's CAT and EMM packets decoded by libdvbpsi (Tests/tools/dvbpsi_cat.c), compiled
/// with `cc` at test time. Fails, never skips, when the compiler or libdvbpsi is missing.
@Suite("Independent decoder: libdvbpsi")
struct IndependentDecoderTests {
    @Test func libdvbpsiReadsOurCATAndEMMs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gh-dvbpsi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let harness = directory.appendingPathComponent("dvbpsi_cat")
        let source = Fixtures.repositoryRoot.appendingPathComponent("Tests/tools/dvbpsi_cat.c").path
        let flags = try shell("pkg-config --cflags --libs libdvbpsi")
        #expect(flags.status == 0, "pkg-config cannot find libdvbpsi (apt install libdvbpsi-dev): \(flags.output)")
        let build = try shell("cc -O1 -o '\(harness.path)' '\(source)' \(flags.output)")
        try #require(build.status == 0, "cannot build the libdvbpsi harness: \(build.output)")

        var catPacketizer = SectionPacketizer(pid: TS.PID.cat, continuityCounter: 5)
        var emmPacketizer = SectionPacketizer(pid: 0x0ABC, continuityCounter: 15)
        let cat = ConditionalAccessTable(
            versionNumber: 9, caDescriptors: [CADescriptor(caSystemID: 0x4AE1, caPID: 0x0ABC, privateData: [1, 2, 3])])
        let emms = [
            try PrivateSection(longFormTableID: 0x82, tableIDExtension: 1, payload: [UInt8](repeating: 0xA5, count: 400)).encoded(),
            try PrivateSection(longFormTableID: 0x83, tableIDExtension: 2, payload: [UInt8](repeating: 0x5A, count: 20)).encoded(),
            try PrivateSection(tableID: 0x84, payload: [UInt8](repeating: 0x11, count: 150)).encoded(),
        ]
        let stream = try catPacketizer.packetize([cat.encoded()]) + emmPacketizer.packetize(emms)
            + catPacketizer.packetize([cat.encoded()])
        let file = directory.appendingPathComponent("gatehouse.ts")
        try Data(stream).write(to: file)
        let result = try shell("'\(harness.path)' '\(file.path)' 0x0ABC")
        #expect(result.status == 0)
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(lines.first == "cat version=9 current_next=1")
        #expect(lines.contains("ca system_id=0x4ae1 pid=0x0abc private_length=3"))
        #expect(lines.filter { $0.hasPrefix("emm") } == [
            "emm table_id=0x82 section_length=409 syntax=1",
            "emm table_id=0x83 section_length=29 syntax=1",
            "emm table_id=0x84 section_length=150 syntax=0",
        ])
        #expect(lines.last == "done packets=\(stream.count / 188)")
    }

    func shell(_ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
