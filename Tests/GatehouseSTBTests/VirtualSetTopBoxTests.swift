import GatehouseCrypto
import GatehouseEMM
import GatehouseSTB
import GatehouseTS
import Testing

/// Drives the virtual box with real TS datagrams: a CAT announcing the EMM PID, then
/// EMM sections sealed under the device keys, packetized on that PID.
@Suite("Virtual set-top box")
struct VirtualSetTopBoxTests {
    static let emmPID: UInt16 = 0x0100
    let key = try! SymmetricKey(hex: "000102030405060708090a0b0c0d0e0f")

    /// A small head-end: seals EMMs for one device and packs them with a CAT.
    struct HeadEnd {
        var sequence: UInt64 = 0
        var catPacketizer = SectionPacketizer(pid: TS.PID.cat)
        var emmPacketizer = SectionPacketizer(pid: VirtualSetTopBoxTests.emmPID)

        mutating func emm(_ payload: EMMPayload, device: String, key: SymmetricKey, keyVersion: UInt16 = 1,
            sequence fixed: UInt64? = nil) throws -> [UInt8]
        {
            sequence += 1
            let emm = EMM(addressing: DeviceAddress.addressing(deviceID: device), keyVersion: keyVersion,
                sequenceNumber: fixed ?? sequence, timestamp: 1_800_000_000, payload: payload)
            return try EMMSealer(key: key, keyVersion: keyVersion).seal(emm)
        }

        mutating func datagram(_ sections: [[UInt8]]) throws -> [UInt8] {
            let cat = try ConditionalAccessTable(caDescriptors: [CADescriptor(caSystemID: 0x4AE1, caPID: VirtualSetTopBoxTests.emmPID)]).encoded()
            return try catPacketizer.packetize([cat]) + emmPacketizer.packetize(sections)
        }
    }

    static let grant = EMMPayload.entitlementAdd(EntitlementGrant(productID: 7, start: 1_800_000_000, end: 1_900_000_000))

    @Test func keepsOnlyItsOwnEMMsAndLearnsTheEMMPIDFromTheCAT() throws {
        var head = HeadEnd()
        let box = try VirtualSetTopBox(deviceID: "box-A", key: key)
        let other = try SymmetricKey.random()
        let mine = try head.emm(Self.grant, device: "box-A", key: key)
        let theirs = try head.emm(Self.grant, device: "box-B", key: other)
        let events = box.receive(datagram: try head.datagram([theirs, mine]))
        #expect(events == [.entitlementAdded(productID: 7, start: 1_800_000_000, end: 1_900_000_000)])
        #expect(box.state.entitlements[7]?.end == 1_900_000_000)
        #expect(box.counters["other_devices"] == 1)
        // The carousel repeats it: nothing new, nothing refused.
        #expect(box.receive(datagram: try head.datagram([mine])) == [])
        #expect(box.counters["repeats"] == 1)
    }

    @Test func aForgedEMMIsRefusedAndChangesNothing() throws {
        var head = HeadEnd()
        let box = try VirtualSetTopBox(deviceID: "box-A", key: key)
        let forged = try head.emm(Self.grant, device: "box-A", key: try SymmetricKey.random())
        let events = box.receive(datagram: try head.datagram([forged]))
        #expect(events.count == 1)
        guard case .refused? = events.first else {
            Issue.record("expected a refusal, got \(events)")
            return
        }
        #expect(box.state.entitlements.isEmpty)
    }

    @Test func anOlderAddRepeatedAfterANewerCancelDoesNotComeBack() throws {
        var head = HeadEnd()
        let box = try VirtualSetTopBox(deviceID: "box-A", key: key)
        let add = try head.emm(Self.grant, device: "box-A", key: key)  // sequence 1
        let cancel = try head.emm(.entitlementCancel(productID: 7), device: "box-A", key: key)  // sequence 2
        // The box was off: it hears the cancel first, then the (older) add on its next round.
        #expect(box.receive(datagram: try head.datagram([cancel])) == [.entitlementCancelled(productID: 7)])
        #expect(box.receive(datagram: try head.datagram([add])) == [])
        #expect(box.state.entitlements.isEmpty)
    }

    @Test func keyUpdateSwitchesToTheNewKey() throws {
        var head = HeadEnd()
        let box = try VirtualSetTopBox(deviceID: "box-A", key: key)
        let newKey = try SymmetricKey.random(size: .bits256)
        let update = try head.emm(.keyUpdate(KeyUpdate(newKeyVersion: 2, newKey: newKey)), device: "box-A", key: key)
        #expect(box.receive(datagram: try head.datagram([update])) == [.keyUpdated(version: 2, kcv: newKey.keyCheckValue)])
        let underNew = try head.emm(Self.grant, device: "box-A", key: newKey, keyVersion: 2)
        #expect(box.receive(datagram: try head.datagram([underNew])).count == 1)
        #expect(box.state.keyVersion == 2)
    }

    @Test func mailboxKeepsTheLatestTen() throws {
        var head = HeadEnd()
        let box = try VirtualSetTopBox(deviceID: "box-A", key: key)
        for i in 1...12 {
            let message = OnScreenMessage(style: .mailbox, durationSeconds: 0, start: 0, expiry: 2_000_000_000, text: "note \(i)")
            _ = box.receive(datagram: try head.datagram([try head.emm(.onScreenMessage(message), device: "box-A", key: key)]))
        }
        #expect(box.state.mailbox.map(\.message.text) == (3...12).map { "note \($0)" })
    }

    @Test func survivesGarbage() throws {
        let box = try VirtualSetTopBox(deviceID: "box-A", key: key, emmPIDs: [Self.emmPID])
        var rng = SystemRandomNumberGenerator()
        for size in [0, 1, 187, 188, 1316, 1328, 4000] {
            let junk = (0..<size).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = box.receive(datagram: junk)
            var packet = [UInt8](repeating: 0xFF, count: 188)
            packet[0] = 0x47
            packet[1] = 0x41
            packet[2] = 0x00
            packet[3] = 0x10
            if size > 4 { packet.replaceSubrange(4..<min(188, size), with: junk.prefix(min(184, size - 4))) }
            _ = box.receive(datagram: packet)
        }
        #expect(box.state.entitlements.isEmpty)
    }
}
