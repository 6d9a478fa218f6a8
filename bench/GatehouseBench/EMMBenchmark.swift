import Foundation
import GatehouseCrypto
import GatehouseEMM

/// EMM build + encrypt to finished section bytes, and open (CRC, AES-GCM verify,
/// decrypt, decode), on one core. Figures go to docs/benchmarks-emm.md.
func runEMMBenchmark() {
    do {
        try emmBenchmark()
    } catch {
        FileHandle.standardError.write(Data("emm benchmark failed: \(error)\n".utf8))
        exit(1)
    }
}

private func emmBenchmark() throws {
    print("EMM benchmark: one core, release; rates are EMMs per second (time per EMM)")
    for size in [SymmetricKey.Size.bits128, .bits256] {
        try emmBenchmark(key: try SymmetricKey.random(size: size))
    }
}

private func emmBenchmark(key: SymmetricKey) throws {
    let sealer = try EMMSealer(key: key, keyVersion: 1)
    let opener = try EMMOpener(key: key, keyVersion: 1)
    let now: UInt32 = 1_767_225_600
    let payloads: [(String, EMMPayload)] = [
        ("entitlement_add", .entitlementAdd(EntitlementGrant(productID: 257, start: now, end: now + 2_678_400))),
        (
            "osm_64B",
            .onScreenMessage(
                OnScreenMessage(
                    style: .scrollingBottom, priority: 1, durationSeconds: 30,
                    start: now, expiry: now + 86_400, text: String(repeating: "M", count: 64)))
        ),
        ("key_update_256", .keyUpdate(KeyUpdate(newKeyVersion: 2, newKey: try SymmetricKey.random(size: .bits256)))),
    ]
    for (round, (name, payload)) in ([payloads[0]] + payloads).enumerated() {
        let count = round == 0 ? 100_000 : 1_000_000  // round 0 warms caches and the DRBG, not reported
        var sink = 0
        var buffer: [UInt8] = []
        buffer.reserveCapacity(4096)
        // Seal: each iteration builds a distinct EMM (new device and sequence number).
        let sealStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<count {
            let emm = EMM(
                addressing: .unique(deviceID: UInt64(i & 0xFFFF)), keyVersion: 1,
                sequenceNumber: UInt64(i), timestamp: now, payload: payload)
            buffer.removeAll(keepingCapacity: true)
            try sealer.seal(emm, appendingTo: &buffer)
            sink &+= Int(buffer[buffer.count - 1])
        }
        let sealSeconds = Double(DispatchTime.now().uptimeNanoseconds - sealStart) / 1e9
        // Seal into a fresh array each time (what a caller that stores each EMM pays).
        let freshStart = DispatchTime.now().uptimeNanoseconds
        var sections: [[UInt8]] = []
        sections.reserveCapacity(1024)
        for i in 0..<count {
            let emm = EMM(
                addressing: .unique(deviceID: UInt64(i & 0xFFFF)), keyVersion: 1,
                sequenceNumber: UInt64(i), timestamp: now, payload: payload)
            let section = try sealer.seal(emm)
            if sections.count < 1024 { sections.append(section) }
            sink &+= section.count
        }
        let freshSeconds = Double(DispatchTime.now().uptimeNanoseconds - freshStart) / 1e9
        // Open: parse, verify CRC and tag, decrypt, decode.
        let openStart = DispatchTime.now().uptimeNanoseconds
        for i in 0..<count {
            let section = sections[i & 1023]
            let emm = try section.withUnsafeBytes { try opener.open($0) }
            sink &+= Int(truncatingIfNeeded: emm.sequenceNumber)
        }
        let openSeconds = Double(DispatchTime.now().uptimeNanoseconds - openStart) / 1e9
        func rate(_ seconds: Double) -> String {
            String(format: "%9.0f/s (%.2f µs)", Double(count) / seconds, seconds / Double(count) * 1e6)
        }
        guard round > 0 else { continue }
        let label = "\(key.size) \(name)".padding(toLength: 26, withPad: " ", startingAt: 0)
        print(
            "\(label) \(sections[0].count) B  seal(append) \(rate(sealSeconds))  "
                + "seal(new array) \(rate(freshSeconds))  open \(rate(openSeconds))")
        if sink == 42 { print("") }  // keep the optimiser from dropping the loops
    }
}
