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
            try await storeRequest(command)
            return try await applier.apply(command, now: now)
        }

        /// The request row the API stores with a command.
        func storeRequest(_ command: Command) async throws {
            try await database.withConnection { connection in
                try connection.execute(
                    "INSERT INTO requests (request_id, kind, body_hash, token_name, status, accepted_at) VALUES (?, ?, '', 'test', 'accepted', ?)",
                    .text(command.requestID), .text(command.kind), .int64(command.acceptedAt))
            }
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

    /// Stores a request row as the API would and returns its command (for `applyBatch`).
    static func accepted(_ h: Harness, _ action: Action, id: String = UUID().uuidString, actor: String = "test")
        async throws -> Command
    {
        let command = Command(requestID: id, actor: actor, acceptedAt: ISO8601.nowMillis(), action: action)
        try await h.database.withConnection { connection in
            try connection.execute(
                "INSERT INTO requests (request_id, kind, body_hash, token_name, status, accepted_at) VALUES (?, ?, '', ?, 'accepted', ?)",
                .text(command.requestID), .text(command.kind), .text(actor), .int64(command.acceptedAt))
        }
        return command
    }

    @Test(arguments: StoreKind.allCases)
    func aBatchWritesEveryAuditRowWithItsActorAndRequest(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        for i in 0..<3 { _ = try await h.register("aud-\(i)", try SymmetricKey.random()) }
        let now = ISO8601.nowMillis()
        // 75 rows: one INSERT of 64, one of 8, three of 1.
        var commands: [Command] = []
        for i in 0..<75 {
            commands.append(try await Self.accepted(h, .addEntitlement(AddEntitlementRequest(
                deviceID: "aud-\(i % 3)", productID: UInt16(100 + i), startsAt: now, endsAt: now + Self.day)),
                id: "aud-req-\(i)", actor: "sms-\(i % 2)"))
        }
        #expect(try await h.applier.applyBatch(commands) == .applied(Array(repeating: .processed(emms: 1), count: 75)))
        struct AuditRow { var actor, action, device, request: String; var at: Int64 }
        let rows = try await h.database.read { connection in
            try connection.query(
                "SELECT actor, action, device_id, request_id, at FROM audit_log WHERE request_id LIKE 'aud-req-%' ORDER BY id"
            ).map {
                AuditRow(actor: try $0.text("actor"), action: try $0.text("action"), device: try $0.text("device_id"),
                    request: try $0.text("request_id"), at: try $0.int64("at"))
            }
        }
        #expect(rows.count == 75)
        #expect(rows.map(\.request) == (0..<75).map { "aud-req-\($0)" })  // in command order
        for (i, row) in rows.enumerated() {
            #expect(row.actor == "sms-\(i % 2)")
            #expect(row.action == "entitlement_activated")
            #expect(row.device == "aud-\(i % 3)")
        }
        // Each row carries the time its command was applied, as the request shows it.
        let processedAt = try await h.database.read { connection in
            Dictionary(uniqueKeysWithValues: try connection.query(
                "SELECT request_id, processed_at FROM requests WHERE request_id LIKE 'aud-req-%'"
            ).map { (try $0.text("request_id"), try $0.int64("processed_at")) })
        }
        #expect(rows.allSatisfy { processedAt[$0.request] == $0.at })
    }

    @Test(arguments: StoreKind.allCases)
    func sequenceNumbersRunOnWithinAndAcrossBatches(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        let key = try SymmetricKey.random()
        _ = try await h.register("seq-1", key)
        let now = ISO8601.nowMillis()
        var commands: [Command] = []
        for product in 1...5 as ClosedRange<UInt16> {
            commands.append(try await Self.accepted(h, .addEntitlement(AddEntitlementRequest(
                deviceID: "seq-1", productID: product, startsAt: now, endsAt: now + Self.day))))
        }
        #expect(try await h.applier.applyBatch(commands) == .applied(Array(repeating: .processed(emms: 1), count: 5)))
        #expect(try await h.apply(.cancelEntitlement(deviceID: "seq-1", productID: 2)) == .processed(emms: 1))
        let emms = try await h.emms("seq-1")
        let first = try #require(emms.first).sequence
        #expect(emms.map(\.sequence) == Array(first..<(first + 6)))
        let stored = try await h.database.read {
            try $0.queryFirst("SELECT next_emm_sequence FROM devices WHERE device_id = 'seq-1'")!.int64("next_emm_sequence")
        }
        #expect(stored == first + 6)
        // What a box would check: every EMM opens and none is refused as a replay.
        let opener = try EMMOpener(key: key, keyVersion: 1)
        let guardian = ReplayGuard()
        for emm in emms { try guardian.accept(try opener.open(emm.section)) }
    }

    @Test(arguments: StoreKind.allCases)
    func aRotationInsideABatchSealsEachEMMUnderTheRightKey(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        let oldKey = try SymmetricKey.random()
        let newKey = try SymmetricKey.random(size: .bits256)
        _ = try await h.register("rot-1", oldKey)
        let now = ISO8601.nowMillis()
        // The sealer cache knows the old key before the batch starts.
        _ = try await h.apply(.addEntitlement(AddEntitlementRequest(
            deviceID: "rot-1", productID: 1, startsAt: now, endsAt: now + Self.day)))
        let batch = [
            try await Self.accepted(h, .addEntitlement(AddEntitlementRequest(
                deviceID: "rot-1", productID: 2, startsAt: now, endsAt: now + Self.day))),
            try await Self.accepted(h, .registerDeviceKey(
                deviceID: "rot-1", wrappedKey: Data(try AESKeyWrap.wrap(newKey, kek: h.kek)),
                kcv: newKey.keyCheckValue, keyBits: 256)),
            try await Self.accepted(h, .addEntitlement(AddEntitlementRequest(
                deviceID: "rot-1", productID: 3, startsAt: now, endsAt: now + Self.day))),
        ]
        #expect(try await h.applier.applyBatch(batch)
            == .applied([.processed(emms: 1), .processed(emms: 3), .processed(emms: 1)]))
        let emms = try await h.emms("rot-1")
        #expect(emms.map(\.kind)
            == ["entitlement_add", "entitlement_add", "key_update", "entitlement_add", "entitlement_add", "entitlement_add"])
        #expect(emms.map(\.sequence) == emms.map(\.sequence).sorted())
        let old = try EMMOpener(key: oldKey, keyVersion: 1)
        let new = try EMMOpener(key: newKey, keyVersion: 2)
        #expect(try old.open(emms[1].section).payload
            == .entitlementAdd(EntitlementGrant(productID: 2, start: UInt32(now / 1000), end: UInt32((now + Self.day) / 1000))))
        #expect(try old.open(emms[2].section).payload == .keyUpdate(KeyUpdate(newKeyVersion: 2, newKey: newKey)))
        for emm in emms[3...] { #expect(throws: Never.self) { try new.open(emm.section) } }
        guard case .entitlementAdd(let grant) = try new.open(emms[5].section).payload else {
            Issue.record("expected the new entitlement under the new key")
            return
        }
        #expect(grant.productID == 3)
    }

    @Test(arguments: StoreKind.allCases)
    func theSealerCacheNeverOutranksTheStoredKey(kind: StoreKind) async throws {
        let handle = try await TestDatabases.make(kind)
        defer { Task { await handle.close() } }
        let kek = try SymmetricKey.random(size: .bits256)
        // Room for two devices, used by three: entries are evicted and built again.
        let h = Harness(
            handle: handle, kek: kek,
            applier: CommandApplier(database: handle.database, kek: kek, logger: .disabled, sealerCacheCapacity: 2))
        var keys: [String: SymmetricKey] = [:]
        for i in 0..<3 {
            keys["lru-\(i)"] = try SymmetricKey.random()
            _ = try await h.register("lru-\(i)", keys["lru-\(i)"]!)
        }
        let now = ISO8601.nowMillis()
        for round in 0..<3 {
            for i in 0..<3 {
                #expect(try await h.apply(.addEntitlement(AddEntitlementRequest(
                    deviceID: "lru-\(i)", productID: UInt16(10 * round + i + 1), startsAt: now, endsAt: now + Self.day)))
                    == .processed(emms: 1))
            }
        }
        for i in 0..<3 {
            let opener = try EMMOpener(key: keys["lru-\(i)"]!, keyVersion: 1)
            for emm in try await h.emms("lru-\(i)") { #expect(throws: Never.self) { try opener.open(emm.section) } }
        }
        // The stored key changes under the same version (a database restored from another
        // copy): the next EMM is sealed under what the database says, not what was cached.
        let replacement = try SymmetricKey.random()
        let wrapped = try AESKeyWrap.wrap(replacement, kek: kek)
        try await h.database.withConnection { connection in
            try connection.execute(
                "UPDATE device_keys SET wrapped_key = ?, kcv = ? WHERE device_id = 'lru-2' AND version = 1",
                .blob(wrapped), .text(replacement.keyCheckValue))
        }
        #expect(try await h.apply(.addEntitlement(AddEntitlementRequest(
            deviceID: "lru-2", productID: 99, startsAt: now, endsAt: now + Self.day))) == .processed(emms: 1))
        let last = try #require(try await h.emms("lru-2").last)
        #expect(throws: Never.self) { try EMMOpener(key: replacement, keyVersion: 1).open(last.section) }
    }

    @Test(arguments: StoreKind.allCases)
    func aMergeOrCancelInTheSameBatchSupersedesTheEMMsBuiltBeforeIt(kind: StoreKind) async throws {
        let h = try await Harness.make(kind)
        defer { Task { await h.handle.close() } }
        let key = try SymmetricKey.random()
        _ = try await h.register("same-1", key)
        let now = ISO8601.nowMillis()
        let batch = [
            try await Self.accepted(h, .addEntitlement(AddEntitlementRequest(
                deviceID: "same-1", productID: 5, startsAt: now, endsAt: now + Self.day))),
            // Overlaps the first: merged, and the first one's EMM (built in this batch) expires.
            try await Self.accepted(h, .addEntitlement(AddEntitlementRequest(
                deviceID: "same-1", productID: 5, startsAt: now + Self.day / 2, endsAt: now + 2 * Self.day))),
            try await Self.accepted(h, .addEntitlement(AddEntitlementRequest(
                deviceID: "same-1", productID: 6, startsAt: now, endsAt: now + Self.day))),
            try await Self.accepted(h, .cancelEntitlement(deviceID: "same-1", productID: 6)),
        ]
        #expect(try await h.applier.applyBatch(batch) == .applied(Array(repeating: .processed(emms: 1), count: 4)))
        let emms = try await h.emms("same-1")
        #expect(emms.map(\.kind) == ["entitlement_add", "entitlement_add", "entitlement_add", "entitlement_cancel"])
        let after = ISO8601.nowMillis()
        #expect(emms[0].expiresAt <= after)  // superseded by the merge
        #expect(emms[1].expiresAt > after)  // the merged entitlement stays on air
        #expect(emms[2].expiresAt <= after)  // cancelled
        #expect(emms[3].expiresAt > after && emms[3].urgent)
        #expect(try await h.entitlements("same-1").map(\.status) == ["active", "cancelled"])
        #expect(try await h.entitlements("same-1").first?.end == now + 2 * Self.day)
        let opener = try EMMOpener(key: key, keyVersion: 1)
        let guardian = ReplayGuard()
        for emm in emms { try guardian.accept(try opener.open(emm.section)) }
    }
}
