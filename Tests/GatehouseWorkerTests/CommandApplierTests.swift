import Foundation
import GatehouseAPI
import GatehouseCore
import GatehouseCrypto
import GatehouseDomain
import GatehouseEMM
import GatehouseStore
import GatehouseTestSupport
import GatehouseWorker
import Testing

/// The worker's rules, applied to a real store (SQLite and MariaDB), checked by opening
/// the EMMs it stored with the device keys.
@Suite("Worker rules and EMMs", .serialized)
struct CommandApplierTests {
    struct Harness {
        let handle: TestDatabases.Handle
        let kek: SymmetricKey
        let applier: CommandApplier
        var database: any SQLDatabase { handle.database }

        static func make(_ kind: StoreKind) async throws -> Harness {
            let handle = try await TestDatabases.make(kind)
            let kek = try SymmetricKey.random(size: .bits256)
            return Harness(handle: handle, kek: kek, applier: CommandApplier(database: handle.database, kek: kek, logger: .disabled))
        }

        /// Stores the request row as the API would, then applies the command.
        func apply(_ action: Action, id: String = UUID().uuidString, now: Millis = ISO8601.nowMillis()) async throws
            -> ApplyOutcome
        {
            let command = Command(requestID: id, actor: "test", acceptedAt: now, action: action)
            try await database.withConnection { connection in
                try connection.execute(
                    "INSERT INTO requests (request_id, kind, body_hash, token_name, status, accepted_at) VALUES (?, ?, '', 'test', 'accepted', ?)",
                    .text(id), .text(command.kind), .int64(now))
            }
            return try await applier.apply(command, now: now)
        }

        func register(_ deviceID: String, _ key: SymmetricKey) async throws -> ApplyOutcome {
            try await apply(.registerDeviceKey(
                deviceID: deviceID, wrappedKey: Data(try AESKeyWrap.wrap(key, kek: kek)), kcv: key.keyCheckValue,
                keyBits: key.byteCount * 8))
        }

        struct StoredEMM {
            var deviceID: String
            var kind: String
            var sequence: Int64
            var expiresAt: Int64
            var urgent: Bool
            var section: [UInt8]
        }

        func emms(_ deviceID: String) async throws -> [StoredEMM] {
            try await database.read { connection in
                try connection.query(
                    "SELECT device_id, kind, sequence, expires_at, urgent, section FROM emms WHERE device_id = ? ORDER BY id",
                    .text(deviceID)
                ).map {
                    StoredEMM(deviceID: try $0.text("device_id"), kind: try $0.text("kind"), sequence: try $0.int64("sequence"),
                        expiresAt: try $0.int64("expires_at"), urgent: try $0.bool("urgent"), section: try $0.blob("section"))
                }
            }
        }

        func entitlements(_ deviceID: String) async throws -> [(product: Int64, start: Int64, end: Int64, status: String)] {
            try await database.read { connection in
                try connection.query(
                    "SELECT product_id, starts_at, ends_at, status FROM entitlements WHERE device_id = ? ORDER BY id",
                    .text(deviceID)
                ).map { (try $0.int64("product_id"), try $0.int64("starts_at"), try $0.int64("ends_at"), try $0.text("status")) }
            }
        }

        func requestStatus(_ id: String) async throws -> (String, String?) {
            try await database.read { connection in
                let row = try connection.queryFirst("SELECT status, reason FROM requests WHERE request_id = ?", .text(id))!
                return (try row.text("status"), try row.textOrNil("reason"))
            }
        }
    }

    static let day: Millis = 86_400_000

    @Test(arguments: StoreKind.allCases)
    func entitlementEMMOpensUnderTheDeviceKeyAndOverlapsMerge(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        let key = try SymmetricKey(hex: "000102030405060708090a0b0c0d0e0f")
        #expect(try await h.register("box-1", key) == .processed(emms: 0))
        let now = ISO8601.nowMillis()
        let first = AddEntitlementRequest(deviceID: "box-1", productID: 7, startsAt: now, endsAt: now + 10 * Self.day)
        let overlapping = AddEntitlementRequest(
            deviceID: "box-1", productID: 7, startsAt: now + 5 * Self.day, endsAt: now + 20 * Self.day)
        #expect(try await h.apply(.addEntitlement(first)) == .processed(emms: 1))
        #expect(try await h.apply(.addEntitlement(overlapping)) == .processed(emms: 1))

        let rows = try await h.entitlements("box-1")
        #expect(rows.count == 1)
        #expect(rows.first?.start == now)
        #expect(rows.first?.end == now + 20 * Self.day)

        let emms = try await h.emms("box-1")
        #expect(emms.count == 2)
        #expect(emms[0].expiresAt <= ISO8601.nowMillis())  // superseded by the merged one
        #expect(emms[1].sequence > emms[0].sequence)
        let opener = try EMMOpener(key: key, keyVersion: 1)
        let opened = try opener.open(emms[1].section)
        #expect(opened.addressing == DeviceAddress.addressing(deviceID: "box-1"))
        #expect(opened.payload == .entitlementAdd(EntitlementGrant(
            productID: 7, start: UInt32(now / 1000), end: UInt32((now + 20 * Self.day) / 1000))))
        // Under any other key the EMM fails authentication.
        let stranger = try EMMOpener(key: try SymmetricKey.random(), keyVersion: 1)
        #expect(throws: EMMError.authenticationFailed) { try stranger.open(emms[1].section) }
    }

    @Test(arguments: StoreKind.allCases)
    func cancelStopsTheEntitlementAndTellsTheBox(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        let key = try SymmetricKey.random()
        _ = try await h.register("box-2", key)
        let now = ISO8601.nowMillis()
        _ = try await h.apply(.addEntitlement(AddEntitlementRequest(
            deviceID: "box-2", productID: 9, startsAt: now, endsAt: now + Self.day)))
        #expect(try await h.apply(.cancelEntitlement(deviceID: "box-2", productID: 9)) == .processed(emms: 1))
        #expect(try await h.entitlements("box-2").map(\.status) == ["cancelled"])
        let emms = try await h.emms("box-2")
        #expect(emms.map(\.kind) == ["entitlement_add", "entitlement_cancel"])
        #expect(emms[0].expiresAt <= ISO8601.nowMillis())
        #expect(emms[1].urgent)
        #expect(try EMMOpener(key: key, keyVersion: 1).open(emms[1].section).payload == .entitlementCancel(productID: 9))
        // Nothing left to cancel: a clear reason.
        let id = UUID().uuidString
        #expect(try await h.apply(.cancelEntitlement(deviceID: "box-2", productID: 9), id: id)
            == .failed(reason: "device box-2 has no active entitlement to product 9"))
        #expect(try await h.requestStatus(id) == ("failed", "device box-2 has no active entitlement to product 9"))
    }

    @Test(arguments: StoreKind.allCases)
    func keyRotationSendsTheNewKeyUnderTheOldOne(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        let oldKey = try SymmetricKey.random()
        let newKey = try SymmetricKey.random(size: .bits256)
        _ = try await h.register("box-3", oldKey)
        let now = ISO8601.nowMillis()
        _ = try await h.apply(.addEntitlement(AddEntitlementRequest(
            deviceID: "box-3", productID: 1, startsAt: now, endsAt: now + Self.day)))
        // Registering the same key again changes nothing.
        #expect(try await h.register("box-3", oldKey) == .processed(emms: 0))
        #expect(try await h.register("box-3", newKey) == .processed(emms: 2))
        let emms = try await h.emms("box-3")
        #expect(emms.map(\.kind) == ["entitlement_add", "key_update", "entitlement_add"])
        #expect(emms[0].expiresAt <= ISO8601.nowMillis())
        let update = try EMMOpener(key: oldKey, keyVersion: 1).open(emms[1].section)
        #expect(update.payload == .keyUpdate(KeyUpdate(newKeyVersion: 2, newKey: newKey)))
        let resent = try EMMOpener(key: newKey, keyVersion: 2).open(emms[2].section)
        guard case .entitlementAdd(let grant) = resent.payload else {
            Issue.record("expected a re-sent entitlement")
            return
        }
        #expect(grant.productID == 1)
        #expect(emms.map(\.sequence) == emms.map(\.sequence).sorted())
    }

    @Test(arguments: StoreKind.allCases)
    func suspendedAndRevokedDevicesGetNothingNew(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        let key = try SymmetricKey.random()
        _ = try await h.register("box-4", key)
        let now = ISO8601.nowMillis()
        let grant = AddEntitlementRequest(deviceID: "box-4", productID: 3, startsAt: now, endsAt: now + Self.day)
        _ = try await h.apply(.addEntitlement(grant))
        #expect(try await h.apply(.setDeviceStatus(deviceID: "box-4", status: .suspended)) == .processed(emms: 0))
        #expect(try await h.apply(.addEntitlement(grant)) == .failed(reason: "device box-4 is suspended"))
        #expect(try await h.apply(.setDeviceStatus(deviceID: "box-4", status: .active)) == .processed(emms: 0))
        #expect(try await h.apply(.setDeviceStatus(deviceID: "box-4", status: .revoked)) == .processed(emms: 0))
        #expect(try await h.emms("box-4").allSatisfy { $0.expiresAt <= ISO8601.nowMillis() })
        #expect(try await h.apply(.addEntitlement(grant)) == .failed(reason: "device box-4 is revoked"))
        #expect(try await h.apply(.setDeviceStatus(deviceID: "box-4", status: .active))
            == .failed(reason: "device box-4 is revoked for good"))
        #expect(try await h.register("box-4", try SymmetricKey.random()) == .failed(reason: "device box-4 is revoked"))
    }

    @Test(arguments: StoreKind.allCases)
    func messageToAllFansOutToActiveDevices(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        var keys: [String: SymmetricKey] = [:]
        for i in 1...5 {
            let key = try SymmetricKey.random()
            keys["fan-\(i)"] = key
            _ = try await h.register("fan-\(i)", key)
        }
        _ = try await h.apply(.setDeviceStatus(deviceID: "fan-5", status: .suspended))
        let now = ISO8601.nowMillis()
        let message = OnScreenMessage(
            kind: .forced, text: "Maintenance tonight", priority: 7, durationSeconds: 30, startsAt: now,
            expiresAt: now + 3_600_000, repeatCount: 2, position: nil)
        #expect(try await h.apply(.sendOSM(OSMRequest(target: .all, message: message))) == .processed(emms: 4))
        for i in 1...4 {
            let emms = try await h.emms("fan-\(i)")
            #expect(emms.count == 1)
            #expect(emms.first?.urgent == true)
            let opened = try EMMOpener(key: keys["fan-\(i)"]!, keyVersion: 1).open(emms[0].section)
            guard case .onScreenMessage(let osm) = opened.payload else {
                Issue.record("expected an OSM")
                return
            }
            #expect(osm.text == "Maintenance tonight")
            #expect(osm.style == .forced)
            #expect(osm.priority == 7)
        }
        #expect(try await h.emms("fan-5").isEmpty)
        let rows = try await h.database.read { try $0.query("SELECT target_kind FROM generate_osm").map { try $0.text("target_kind") } }
        #expect(rows == ["all"])
        // A list with an unknown device is refused whole: nothing half-sent.
        let list = OSMRequest(target: .devices(["fan-1", "ghost"]), message: message)
        #expect(try await h.apply(.sendOSM(list)) == .failed(reason: "unknown device ghost: register its key first"))
        #expect(try await h.emms("fan-1").count == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func aRedeliveredCommandChangesNothing(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        _ = try await h.register("box-6", try SymmetricKey.random())
        let now = ISO8601.nowMillis()
        let command = Command(requestID: "fixed-id", actor: "test", acceptedAt: now, action: .addEntitlement(
            AddEntitlementRequest(deviceID: "box-6", productID: 4, startsAt: now, endsAt: now + Self.day)))
        try await h.database.withConnection { connection in
            try connection.execute(
                "INSERT INTO requests (request_id, kind, body_hash, status, accepted_at) VALUES ('fixed-id', 'add_entitlement', '', 'accepted', ?)",
                .int64(now))
        }
        #expect(try await h.applier.apply(command) == .processed(emms: 1))
        #expect(try await h.applier.apply(command) == .alreadyApplied)
        #expect(try await h.applier.apply(command) == .alreadyApplied)
        #expect(try await h.emms("box-6").count == 1)
        let audits = try await h.database.read {
            try $0.queryFirst("SELECT COUNT(*) AS n FROM audit_log WHERE request_id = 'fixed-id'")!.int("n")
        }
        #expect(audits == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func aBatchAppliesOnceAndRollsBackWholeAtARuleBreak(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        _ = try await h.register("box-7", try SymmetricKey.random())
        let now = ISO8601.nowMillis()
        func command(_ id: String, _ device: String, _ product: UInt16) async throws -> Command {
            try await h.database.withConnection { connection in
                try connection.execute(
                    "INSERT INTO requests (request_id, kind, body_hash, status, accepted_at) VALUES (?, 'add_entitlement', '', 'accepted', ?)",
                    .text(id), .int64(now))
            }
            return Command(requestID: id, actor: "test", acceptedAt: now, action: .addEntitlement(
                AddEntitlementRequest(deviceID: device, productID: product, startsAt: now, endsAt: now + Self.day)))
        }
        let first = try await command("batch-1", "box-7", 1)
        let second = try await command("batch-2", "box-7", 2)
        // A duplicate inside the batch is seen as applied: the claim reads the batch's own writes.
        #expect(try await h.applier.applyBatch([first, first, second])
            == .applied([.processed(emms: 1), .alreadyApplied, .processed(emms: 1)]))
        #expect(try await h.applier.applyBatch([first, second]) == .applied([.alreadyApplied, .alreadyApplied]))
        #expect(try await h.emms("box-7").count == 2)

        // A rule break rolls the whole batch back, the commands before it included.
        let third = try await command("batch-3", "box-7", 3)
        let refused = try await command("batch-4", "nobody", 4)
        #expect(try await h.applier.applyBatch([third, refused]) == .stopped(at: 1))
        #expect(try await h.requestStatus("batch-3").0 == "accepted")
        #expect(try await h.emms("box-7").count == 2)
        #expect(try await h.applier.applyBatch([third]) == .applied([.processed(emms: 1)]))
        if case .failed = try await h.applier.apply(refused) {} else { Issue.record("the refusal was not recorded") }
        #expect(try await h.requestStatus("batch-4").0 == "failed")
        let audits = try await h.database.read {
            try $0.queryFirst("SELECT COUNT(*) AS n FROM audit_log WHERE request_id LIKE 'batch-%'")!.int("n")
        }
        #expect(audits == 4)  // three activations, one refusal
        let processedAt = try await h.database.read {
            try $0.query("SELECT processed_at FROM requests WHERE request_id LIKE 'batch-%' AND processed_at IS NULL").count
        }
        #expect(processedAt == 0)
    }
}
