import GatehouseCrypto
import GatehouseEMM
import GatehouseTS
import GatehouseTestSupport
import Testing

/// The published key of the worked example: the KEK of RFC 3394 section 4.1.
let exampleKey = try! SymmetricKey(hex: "000102030405060708090a0b0c0d0e0f")

func recomputeCRC(_ section: inout [UInt8]) {
    let crc = CRC32MPEG2.checksum(section[0..<(section.count - 4)])
    section[section.count - 4] = UInt8(crc >> 24)
    section[section.count - 3] = UInt8((crc >> 16) & 0xFF)
    section[section.count - 2] = UInt8((crc >> 8) & 0xFF)
    section[section.count - 1] = UInt8(crc & 0xFF)
}

let samplePayloads: [EMMPayload] = [
    .entitlementAdd(EntitlementGrant(productID: 0x0101, start: 1_767_225_600, end: 1_769_904_000)),
    .entitlementCancel(productID: 65535),
    .onScreenMessage(
        OnScreenMessage(
            style: .scrollingTop, priority: 3, durationSeconds: 30, start: 1_767_225_600,
            expiry: 1_767_312_000, repeatCount: 2, position: .random, text: "Your subscription renews on 1 Feb ✓")),
    .onScreenMessage(
        OnScreenMessage(
            style: .fingerprint, priority: 255, durationSeconds: 5, start: 0, expiry: 0, repeatCount: 0,
            position: ScreenPosition(x: 10, y: 90), text: "")),
    .onScreenMessage(
        OnScreenMessage(
            style: .mailbox, durationSeconds: 0, start: 1, expiry: 2,
            text: String(repeating: "é", count: EMMLayout.maximumTextBytes / 2))),
    .keyUpdate(KeyUpdate(newKeyVersion: 2, newKey: try! SymmetricKey(hex: String(repeating: "a5", count: 16)))),
    .keyUpdate(KeyUpdate(newKeyVersion: 0xFFFF, newKey: try! SymmetricKey(hex: String(repeating: "5a", count: 32)))),
]

@Suite("EMM seal and open")
struct EMMTests {
    /// docs/emm-format.md, "Worked example": this test keeps the document true.
    @Test("the worked example of docs/emm-format.md, byte for byte")
    func workedExample() throws {
        let emm = EMM(
            addressing: .unique(deviceID: 0x1234_5678), keyVersion: 1, sequenceNumber: 42,
            timestamp: 1_767_225_600,
            payload: .entitlementAdd(EntitlementGrant(productID: 0x0101, start: 1_767_225_600, end: 1_769_904_000)))
        let sealer = try EMMSealer(key: exampleKey, keyVersion: 1)
        let section = try sealer.seal(emm, nonceSalt: 0xA1B2_C3D4)
        let expected = Fixtures.hex(
            """
            82 f0 40 56 78 c1 00 00
            01 00 00 00 00 00 12 34 56 78 00 01 00 00 00 00 00 00 00 2a 69 55 b9 00 a1 b2 c3 d4
            3b de c1 a1 e4 4e b6 69 35 c1 3d
            23 0f 66 da 3d ac ff 31 e3 31 26 c4 5a b3 ce 6e
            96 4c d0 e9
            """)
        #expect(Fixtures.hexString(section) == Fixtures.hexString(expected))
        #expect(try EMMOpener(key: exampleKey, keyVersion: 1).open(section) == emm)
    }

    @Test("every kind and addressing class round-trips", arguments: samplePayloads)
    func roundTrip(_ payload: EMMPayload) throws {
        let key = try SymmetricKey.random(size: .bits256)
        let sealer = try EMMSealer(key: key, keyVersion: 7)
        let opener = try EMMOpener(key: key, keyVersion: 7)
        for addressing in [EMMAddressing.unique(deviceID: .max), .shared(groupID: 99), .global] {
            let emm = EMM(
                addressing: addressing, keyVersion: 7, sequenceNumber: 1 << 40, timestamp: 1_767_225_600,
                payload: payload)
            let section = try sealer.seal(emm)
            #expect(try opener.open(section) == emm)
            #expect(section[0] == EMMTableIDs.standard.tableID(for: addressing))
            let envelope = try EMMEnvelope(parsing: section)
            #expect(envelope.addressing == addressing)
            #expect(envelope.sequenceNumber == 1 << 40)
            #expect(envelope.keyVersion == 7)
            #expect(envelope.sectionSize == section.count)
            // The TS module's own parser agrees: long form, CRC valid, same bytes back.
            let parsed = try PrivateSection(parsing: section)
            #expect(parsed.isLongForm)
            #expect(parsed.tableIDExtension == UInt16(truncatingIfNeeded: addressing.address))
            #expect(try parsed.encoded() == section)
        }
    }

    @Test("the same EMM sealed twice gets different nonces and both open")
    func freshSalt() throws {
        let sealer = try EMMSealer(key: exampleKey, keyVersion: 1)
        let emm = EMM(
            addressing: .unique(deviceID: 1), keyVersion: 1, sequenceNumber: 5, timestamp: 0,
            payload: .entitlementCancel(productID: 1))
        let a = try sealer.seal(emm)
        let b = try sealer.seal(emm)
        #expect(a != b)
        #expect(Array(a[32..<36]) != Array(b[32..<36]))
        let opener = try EMMOpener(key: exampleKey, keyVersion: 1)
        #expect(try opener.open(a) == emm)
        #expect(try opener.open(b) == emm)
    }

    @Test("altering any byte (CRC recomputed) is refused; header bytes fail authentication")
    func tamperEveryByte() throws {
        let sealer = try EMMSealer(key: exampleKey, keyVersion: 1)
        let opener = try EMMOpener(key: exampleKey, keyVersion: 1)
        let emm = EMM(
            addressing: .unique(deviceID: 0xCAFE), keyVersion: 1, sequenceNumber: 9, timestamp: 100,
            payload: samplePayloads[2])
        let section = try sealer.seal(emm)
        for index in 0..<(section.count - 4) {
            for flip: UInt8 in [0x01, 0x80] {
                var altered = section
                altered[index] ^= flip
                recomputeCRC(&altered)
                let error = #expect(throws: EMMError.self) { try opener.open(altered) }
                switch index {
                case 1, 2:  // section_syntax_indicator / section_length: caught by the section parser or GCM
                    break
                case EMMLayout.formatVersionOffset:
                    #expect(error == .unsupportedFormatVersion(0x01 ^ flip))
                case EMMLayout.addressingClassOffset where flip == 0x80:
                    #expect(error == .unknownAddressingClass(0x80))
                case EMMLayout.keyVersionOffset, EMMLayout.keyVersionOffset + 1:
                    if case .keyVersionMismatch = error {
                    } else {
                        Issue.record("byte \(index): \(String(describing: error))")
                    }
                default:
                    #expect(error == .authenticationFailed, "byte \(index) flip \(flip)")
                }
            }
        }
        // Without recomputing the CRC, damage is a transmission error, caught before crypto.
        var damaged = section
        damaged[40] ^= 0x10
        #expect(throws: EMMError.section(.crcMismatch)) { try opener.open(damaged) }
    }

    @Test("the wrong key fails authentication; the wrong key version is named")
    func wrongKey() throws {
        let emm = EMM(
            addressing: .unique(deviceID: 1), keyVersion: 3, sequenceNumber: 1, timestamp: 0,
            payload: samplePayloads[0])
        let section = try EMMSealer(key: exampleKey, keyVersion: 3).seal(emm)
        #expect(throws: EMMError.authenticationFailed) {
            try EMMOpener(key: try SymmetricKey.random(), keyVersion: 3).open(section)
        }
        #expect(throws: EMMError.authenticationFailed) {
            try EMMOpener(key: try SymmetricKey.random(size: .bits256), keyVersion: 3).open(section)
        }
        #expect(throws: EMMError.keyVersionMismatch(expected: 4, found: 3)) {
            try EMMOpener(key: exampleKey, keyVersion: 4).open(section)
        }
        #expect(throws: EMMError.keyVersionMismatch(expected: 3, found: 2)) {
            try EMMSealer(key: exampleKey, keyVersion: 3).seal(
                EMM(addressing: .global, keyVersion: 2, sequenceNumber: 1, timestamp: 0, payload: samplePayloads[1]))
        }
    }

    @Test("fields that cannot be encoded are refused before sealing")
    func invalidFields() throws {
        let sealer = try EMMSealer(key: exampleKey, keyVersion: 1)
        func emm(_ payload: EMMPayload) -> EMM {
            EMM(addressing: .unique(deviceID: 1), keyVersion: 1, sequenceNumber: 1, timestamp: 0, payload: payload)
        }
        let backwards = #expect(throws: EMMError.self) {
            try sealer.seal(emm(.entitlementAdd(EntitlementGrant(productID: 1, start: 10, end: 10))))
        }
        #expect(backwards?.description.contains("must be after its start") == true)
        let long = OnScreenMessage(
            style: .forced, durationSeconds: 1, start: 0, expiry: 1,
            text: String(repeating: "x", count: EMMLayout.maximumTextBytes + 1))
        let tooLong = #expect(throws: EMMError.self) { try sealer.seal(emm(.onScreenMessage(long))) }
        #expect(tooLong?.description.contains("limit is 1024") == true)
    }

    @Test("a key update carries the new key and never shows it in descriptions")
    func keyUpdate() throws {
        let newKey = try SymmetricKey(hex: "00112233445566778899aabbccddeeff")
        let emm = EMM(
            addressing: .unique(deviceID: 77), keyVersion: 1, sequenceNumber: 3, timestamp: 0,
            payload: .keyUpdate(KeyUpdate(newKeyVersion: 2, newKey: newKey)))
        let section = try EMMSealer(key: exampleKey, keyVersion: 1).seal(emm)
        #expect(!Fixtures.hexString(section).contains("00112233445566778899aabbccddeeff"))
        let opened = try EMMOpener(key: exampleKey, keyVersion: 1).open(section)
        guard case .keyUpdate(let update) = opened.payload else {
            Issue.record("expected a key update")
            return
        }
        #expect(update.newKey == newKey)
        #expect(update.newKeyVersion == 2)
        #expect(!String(describing: opened).contains("00112233"))
        #expect(String(describing: opened).contains(newKey.keyCheckValue))
    }

    @Test("custom table_ids are honoured and do not affect parsing")
    func tableIDs() throws {
        let sealer = try EMMSealer(
            key: exampleKey, keyVersion: 1,
            tableIDs: EMMTableIDs(unique: 0x81, shared: 0x8E, global: 0x8F))
        let emm = EMM(
            addressing: .unique(deviceID: 1), keyVersion: 1, sequenceNumber: 1, timestamp: 0,
            payload: samplePayloads[1])
        let section = try sealer.seal(emm)
        #expect(section[0] == 0x81)
        #expect(try EMMOpener(key: exampleKey, keyVersion: 1).open(section) == emm)
    }
}

@Suite("ReplayGuard")
struct ReplayGuardTests {
    @Test("refuses equal (duplicate) and lower (stale) sequence numbers per address")
    func refusals() throws {
        let guardian = ReplayGuard()
        let device = EMMAddressing.unique(deviceID: 1)
        try guardian.accept(device, sequenceNumber: 10)
        #expect(throws: EMMError.duplicate(sequenceNumber: 10)) { try guardian.accept(device, sequenceNumber: 10) }
        #expect(throws: EMMError.stale(sequenceNumber: 9, highestAccepted: 10)) {
            try guardian.accept(device, sequenceNumber: 9)
        }
        try guardian.accept(device, sequenceNumber: 12)
        #expect(guardian.highestAccepted(for: device) == 12)
        // Other addresses have their own counters.
        try guardian.accept(.unique(deviceID: 2), sequenceNumber: 1)
        try guardian.accept(.shared(groupID: 1), sequenceNumber: 1)
        try guardian.accept(.global, sequenceNumber: 1)
        #expect(throws: EMMError.duplicate(sequenceNumber: 1)) { try guardian.check(.global, sequenceNumber: 1) }
        try guardian.check(.global, sequenceNumber: 2)
        #expect(guardian.highestAccepted(for: .global) == 1)  // check does not record
    }

    @Test("window mode accepts unseen numbers within the window once, out of order")
    func window() throws {
        let guardian = ReplayGuard(window: 64)
        let device = EMMAddressing.unique(deviceID: 1)
        // A box joining the carousel mid-cycle: 11, 12, then 10 on the next cycle.
        try guardian.accept(device, sequenceNumber: 11)
        try guardian.accept(device, sequenceNumber: 12)
        try guardian.accept(device, sequenceNumber: 10)
        #expect(throws: EMMError.duplicate(sequenceNumber: 10)) { try guardian.accept(device, sequenceNumber: 10) }
        #expect(throws: EMMError.duplicate(sequenceNumber: 11)) { try guardian.accept(device, sequenceNumber: 11) }
        #expect(throws: EMMError.duplicate(sequenceNumber: 12)) { try guardian.accept(device, sequenceNumber: 12) }
        try guardian.accept(device, sequenceNumber: 100)
        try guardian.accept(device, sequenceNumber: 37)  // 63 below: still inside
        #expect(throws: EMMError.stale(sequenceNumber: 36, highestAccepted: 100)) {
            try guardian.accept(device, sequenceNumber: 36)
        }
        try guardian.accept(device, sequenceNumber: 1000)  // a jump beyond the window clears it
        #expect(throws: EMMError.stale(sequenceNumber: 100, highestAccepted: 1000)) {
            try guardian.accept(device, sequenceNumber: 100)
        }
        try guardian.accept(device, sequenceNumber: 999)
        // After a restore, the whole window below the restored value counts as seen.
        let restored = ReplayGuard(window: 64)
        restored.restore(guardian.snapshot())
        #expect(throws: EMMError.duplicate(sequenceNumber: 990)) { try restored.accept(device, sequenceNumber: 990) }
        try restored.accept(device, sequenceNumber: 1001)
    }

    @Test("a replayed sealed EMM is refused after the first opening")
    func replayedSection() throws {
        let sealer = try EMMSealer(key: exampleKey, keyVersion: 1)
        let opener = try EMMOpener(key: exampleKey, keyVersion: 1)
        let guardian = ReplayGuard()
        func emm(_ seq: UInt64) -> EMM {
            EMM(
                addressing: .unique(deviceID: 5), keyVersion: 1, sequenceNumber: seq, timestamp: 0,
                payload: .entitlementCancel(productID: 1))
        }
        let old = try sealer.seal(emm(1))
        let new = try sealer.seal(emm(2))
        try guardian.accept(try opener.open(old))
        try guardian.accept(try opener.open(new))
        #expect(throws: EMMError.duplicate(sequenceNumber: 2)) { try guardian.accept(try opener.open(new)) }
        #expect(throws: EMMError.stale(sequenceNumber: 1, highestAccepted: 2)) {
            try guardian.accept(try opener.open(old))
        }
    }

    @Test("restore never lowers a counter; concurrent accepts apply an EMM once")
    func restoreAndConcurrency() async throws {
        let guardian = ReplayGuard()
        guardian.restore([.unique(deviceID: 1): 50])
        guardian.restore([.unique(deviceID: 1): 20])
        #expect(guardian.snapshot() == [.unique(deviceID: 1): 50])
        let accepted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<16 {
                group.addTask { (try? guardian.accept(.unique(deviceID: 1), sequenceNumber: 51)) != nil }
            }
            var count = 0
            for await ok in group where ok { count += 1 }
            return count
        }
        #expect(accepted == 1)
    }
}

@Suite("EMM decoder robustness")
struct EMMFuzzTests {
    @Test("random, truncated and mutated bytes never crash the decoder")
    func fuzz() throws {
        var rng = SplitMix64(seed: 0x6A7E_4F05)
        let sealer = try EMMSealer(key: exampleKey, keyVersion: 1)
        let opener = try EMMOpener(key: exampleKey, keyVersion: 1)
        var valid: [[UInt8]] = []
        for (i, payload) in samplePayloads.enumerated() {
            valid.append(
                try sealer.seal(
                    EMM(
                        addressing: .unique(deviceID: UInt64(i)), keyVersion: 1,
                        sequenceNumber: UInt64(i), timestamp: 0, payload: payload)))
        }
        var opened = 0
        for iteration in 0..<20_000 {
            var bytes: [UInt8]
            switch iteration % 4 {
            case 0:  // pure noise, sometimes with a plausible long-form header
                bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if bytes.count > 3, Bool.random(using: &rng) {
                    bytes[1] = 0xB0 | (bytes[1] & 0x0F)
                    recomputeCRC(&bytes)
                }
            case 1:  // truncation of a valid section
                let source = valid.randomElement(using: &rng)!
                bytes = Array(source.prefix(Int.random(in: 0..<source.count, using: &rng)))
            case 2:  // a valid section with a few bytes changed and the CRC fixed
                bytes = valid.randomElement(using: &rng)!
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    bytes[Int.random(in: 0..<(bytes.count - 4), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                recomputeCRC(&bytes)
            default:  // a valid section with its length field rewritten
                bytes = valid.randomElement(using: &rng)!
                let length = Int.random(in: 0...0xFFF, using: &rng)
                bytes[1] = (bytes[1] & 0xF0) | UInt8(length >> 8)
                bytes[2] = UInt8(length & 0xFF)
            }
            _ = try? EMMEnvelope(parsing: bytes)
            if (try? opener.open(bytes)) != nil { opened += 1 }
        }
        // Mutations can hit only the CRC-neutral untouched cases (e.g. a byte rewritten to itself).
        #expect(opened < 200)
        for section in valid { #expect(throws: Never.self) { try opener.open(section) } }
    }
}
