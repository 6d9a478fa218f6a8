import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseDomain
import GatehouseEMM
import GatehouseStore
import Synchronization

/// The outcome of applying one command, as `GET /requests/{id}` shows it.
public enum ApplyOutcome: Sendable, Equatable {
    /// Applied now; `emms` were built and stored for the carousel.
    case processed(emms: Int)
    /// Refused by a business rule; the reason is stored for the caller.
    case failed(reason: String)
    /// Already applied earlier (a redelivery): nothing changed.
    case alreadyApplied
}

/// `applyBatch`: the command at `index` broke a rule; thrown to roll the batch back.
struct BatchStop: Error {
    var index: Int
}

/// A business rule said no. Rolled back, then recorded as the request's failure reason.
struct RuleViolation: Error {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Applies commands to the store, exactly once each: every command runs in one
/// database transaction that also marks its request processed (or failed), so a
/// redelivered command finds its request no longer `accepted` and changes nothing.
///
/// Rules: entitlements and messages need a known, active device; overlapping
/// entitlements for one product merge; a cancel stops the entitlement and tells the
/// box; a key rotation is announced by a key-update EMM under the old key; a revoked
/// device gets no more EMMs; a message to all devices fans out to every active device.
public final class CommandApplier: Sendable {
    let database: any SQLDatabase
    let kek: SymmetricKey
    let schedule: EMMSchedule
    let logger: Logger
    /// Sealers by device, kept between batches (see `DeviceSealers`); sealing happens
    /// while holding the lock, so sealers never cross threads unguarded.
    let sealers: Mutex<DeviceSealers>

    /// - Parameter sealerCacheCapacity: devices whose unwrapped key and AES-GCM context are
    ///   kept between commands (default 4,096, a few MiB); 1 effectively turns the cache off.
    public init(
        database: any SQLDatabase, kek: SymmetricKey, schedule: EMMSchedule = EMMSchedule(), logger: Logger,
        sealerCacheCapacity: Int = 4096
    ) {
        self.database = database
        self.kek = kek
        self.schedule = schedule
        self.logger = logger
        self.sealers = Mutex(DeviceSealers(capacity: max(1, sealerCacheCapacity)))
    }

    /// Applies `command` in one transaction (rules, EMMs, audit, request status).
    /// - Throws: only for infrastructure failures (database unavailable, …), which the
    ///   caller retries; a rule violation is an outcome, not an error.
    public func apply(_ command: Command, now: Millis = ISO8601.nowMillis()) async throws -> ApplyOutcome {
        do {
            let outcome = try await database.transaction { [self] connection in
                let writes = TransactionWrites()
                let outcome = try applyOne(command, now: now, connection, writes)
                try writes.flush(connection)
                return outcome
            }
            log(command, outcome)
            return outcome
        } catch let violation as RuleViolation {
            // The transaction rolled back; record the failure on its own.
            let recorded = try await database.transaction { connection in
                guard try Self.claim(command, connection, status: "failed", now: now, reason: violation.reason)
                else { return false }
                try Self.audit(connection, command, now: now, action: "request_failed",
                    deviceID: command.partitionKey == "*" ? nil : command.partitionKey, detail: violation.reason)
                return true
            }
            let outcome: ApplyOutcome = recorded ? .failed(reason: violation.reason) : .alreadyApplied
            log(command, outcome)
            return outcome
        }
    }

    /// What `applyBatch` did.
    public enum BatchOutcome: Sendable, Equatable {
        /// Every command was applied (or found already applied) and committed together;
        /// one outcome per command, in order.
        case applied([ApplyOutcome])
        /// The command at this index broke a business rule: the whole transaction rolled
        /// back and nothing of the batch was stored. Apply the commands before it again
        /// (as a batch) and that one alone with `apply`, which records the refusal.
        case stopped(at: Int)
    }

    /// Applies several commands, in order, in one database transaction: each command's
    /// request row is claimed in the same transaction as its effects, exactly as `apply`
    /// does, so a redelivered batch (crash before the bus offsets were committed) changes
    /// nothing. Fewer commits is what makes a backlog drain fast; the bus offsets must be
    /// committed only after this returns `.applied`.
    ///
    /// Each command is applied with its own `now` (the time it is reached), as `apply` would.
    /// The batch's audit rows are written together just before the commit.
    /// - Throws: infrastructure failures (nothing was stored; the caller falls back to `apply`
    ///   one command at a time, with its retries).
    /// - Parameter alsoInTransaction: run inside the same transaction after the batch's
    ///   writes (the embedded bus's offset commit), so it commits or rolls back with them.
    public func applyBatch(
        _ commands: [Command], alsoInTransaction: (@Sendable (any SQLConnection) throws -> Void)? = nil
    ) async throws -> BatchOutcome {
        guard !commands.isEmpty else { return .applied([]) }
        do {
            let outcomes = try await database.transaction { [self] connection in
                let writes = TransactionWrites()
                var outcomes: [ApplyOutcome] = []
                outcomes.reserveCapacity(commands.count)
                for (index, command) in commands.enumerated() {
                    do {
                        outcomes.append(try applyOne(command, now: ISO8601.nowMillis(), connection, writes))
                    } catch is RuleViolation {
                        throw BatchStop(index: index)
                    }
                }
                try writes.flush(connection)
                try alsoInTransaction?(connection)
                return outcomes
            }
            for (command, outcome) in zip(commands, outcomes) { log(command, outcome) }
            return .applied(outcomes)
        } catch let stop as BatchStop {
            return .stopped(at: stop.index)
        }
    }

    /// Claims the request and applies the command inside the caller's transaction.
    /// - Throws: `RuleViolation` (the caller rolls back), or infrastructure errors.
    private func applyOne(
        _ command: Command, now: Millis, _ connection: any SQLConnection, _ writes: TransactionWrites
    ) throws -> ApplyOutcome {
        guard try Self.claim(command, connection, status: "processed", now: now, reason: nil) else {
            return .alreadyApplied
        }
        let context = ApplyContext(
            connection: connection, command: command, now: now, kek: kek, schedule: schedule, writes: writes,
            applier: self)
        return .processed(emms: try context.run())
    }

    /// Claims the request for this transaction and records its outcome in the same
    /// statement: the UPDATE matches only a request still `accepted`, so a redelivered
    /// command (or a duplicate later in the same batch, which sees the batch's own writes)
    /// finds nothing to claim. On MariaDB the UPDATE also takes the row lock, so two
    /// workers can never both claim one request. If the caller rolls back (a rule broke),
    /// the claim goes with it. A request row missing (its API transaction never committed,
    /// impossible for a published outbox row) is created so the outcome has somewhere to go.
    /// - Returns: whether the command is to be applied now.
    static func claim(
        _ command: Command, _ connection: any SQLConnection, status: String, now: Millis, reason: String?
    ) throws -> Bool {
        let claimed = try connection.execute(
            "UPDATE requests SET status = ?, processed_at = ?, reason = ? WHERE request_id = ? AND status = 'accepted'",
            .text(status), .int64(now), SQLValue(reason), .text(command.requestID)
        ).affectedRows
        if claimed > 0 { return true }
        if try connection.queryFirst("SELECT status FROM requests WHERE request_id = ?", .text(command.requestID)) != nil {
            return false
        }
        try connection.execute(
            """
            INSERT INTO requests (request_id, kind, body_hash, token_name, status, accepted_at, processed_at, reason)
            VALUES (?, ?, '', ?, ?, ?, ?, ?)
            """, .text(command.requestID), .text(command.kind), .text(command.actor), .text(status),
            .int64(command.acceptedAt), .int64(now), SQLValue(reason))
        return true
    }

    /// Writes one audit row now (the failure path, outside any batch).
    static func audit(_ connection: any SQLConnection, _ command: Command, now: Millis, action: String,
        deviceID: String?, detail: String?) throws
    {
        try connection.execute(
            "INSERT INTO audit_log (at, actor, action, device_id, request_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
            .int64(now), .text(command.actor), .text(action), SQLValue(deviceID), .text(command.requestID),
            SQLValue(detail))
    }

    private func log(_ command: Command, _ outcome: ApplyOutcome) {
        switch outcome {
        case .processed(let emms):
            logger.info("worker.applied", [
                "request.id": command.requestID, "request.kind": command.kind, "emm.count": String(emms),
            ])
        case .failed(let reason):
            logger.notice("worker.refused", [
                "request.id": command.requestID, "request.kind": command.kind, "reason": reason,
            ])
        case .alreadyApplied:
            logger.debug("worker.duplicate", ["request.id": command.requestID])
        }
    }
}

/// One command being applied inside its transaction.
struct ApplyContext {
    let connection: any SQLConnection
    let command: Command
    let now: Millis
    let kek: SymmetricKey
    let schedule: EMMSchedule
    /// Rows this transaction writes together before it commits.
    let writes: TransactionWrites
    /// Holds the worker-wide sealer cache.
    let applier: CommandApplier

    /// Applies the action; returns how many EMMs were stored.
    func run() throws -> Int {
        switch command.action {
        case .registerDeviceKey(let deviceID, let wrappedKey, let kcv, _):
            return try registerKey(deviceID: deviceID, wrapped: Array(wrappedKey), kcv: kcv)
        case .addEntitlement(let request):
            return try addEntitlement(request)
        case .cancelEntitlement(let deviceID, let productID):
            return try cancelEntitlement(deviceID: deviceID, productID: productID)
        case .sendOSM(let request):
            return try sendOSM(request)
        case .setDeviceStatus(let deviceID, let status):
            return try setStatus(deviceID: deviceID, status: status)
        }
    }

    /// Queues an audit row for this command (written with the rest of the transaction's).
    func audit(action: String, deviceID: String?, detail: String?) {
        writes.audit.append(
            TransactionWrites.AuditRow(
                at: now, actor: command.actor, action: action, deviceID: deviceID, requestID: command.requestID,
                detail: detail))
    }

    // MARK: Devices and keys

    /// A device with its current key (`nil` when the row for its key version is missing)
    /// and the next EMM sequence number it will get.
    struct DeviceRow {
        var status: DeviceStatus
        var keyVersion: Int
        var wrappedKey: [UInt8]?
        var kcv: String?
        var nextSequence: Int64
    }

    /// The device, its current key and its next sequence number in one statement. On
    /// MariaDB the read locks the device row (`FOR UPDATE`) until commit, as the sequence
    /// UPDATE used to: no other worker can hand out the same number meanwhile. SQLite's
    /// transaction already holds the database's only write lock.
    static func deviceSQL(_ dialect: SQLDialect, where condition: String) -> String {
        let lock: String
        switch dialect {
        case .sqlite: lock = ""
        case .mariadb: lock = " FOR UPDATE"
        }
        return """
            SELECT d.device_id AS device_id, d.status AS status, d.key_version AS key_version,
                d.next_emm_sequence AS next_emm_sequence, k.wrapped_key AS wrapped_key, k.kcv AS kcv
            FROM devices d LEFT JOIN device_keys k ON k.device_id = d.device_id AND k.version = d.key_version
            WHERE \(condition)
            """ + lock
    }
    static let deviceByIDSQLite = deviceSQL(.sqlite, where: "d.device_id = ?")
    static let deviceByIDMariaDB = deviceSQL(.mariadb, where: "d.device_id = ?")
    static let activeDevicesSQLite = deviceSQL(.sqlite, where: "d.status = 'active' ORDER BY d.device_id")
    static let activeDevicesMariaDB = deviceSQL(.mariadb, where: "d.status = 'active' ORDER BY d.device_id")

    var deviceByIDSQL: String {
        switch connection.dialect {
        case .sqlite: Self.deviceByIDSQLite
        case .mariadb: Self.deviceByIDMariaDB
        }
    }

    var activeDevicesSQL: String {
        switch connection.dialect {
        case .sqlite: Self.activeDevicesSQLite
        case .mariadb: Self.activeDevicesMariaDB
        }
    }

    func deviceRow(_ row: SQLRow) throws -> DeviceRow {
        let id = try row.text("device_id")
        return DeviceRow(
            status: DeviceStatus(rawValue: try row.text("status")) ?? .revoked, keyVersion: try row.int("key_version"),
            wrappedKey: try row.blobOrNil("wrapped_key"), kcv: try row.textOrNil("kcv"),
            // Numbers this transaction handed out are not written back until it ends.
            nextSequence: try writes.sequences[id] ?? row.int64("next_emm_sequence"))
    }

    func device(_ deviceID: String) throws -> DeviceRow? {
        guard let row = try connection.queryFirst(deviceByIDSQL, .text(deviceID)) else { return nil }
        return try deviceRow(row)
    }

    /// The device must exist and be active to receive anything new.
    func activeDevice(_ deviceID: String) throws -> DeviceRow {
        guard let device = try device(deviceID) else { throw RuleViolation("unknown device \(deviceID): register its key first") }
        guard device.status == .active else { throw RuleViolation("device \(deviceID) is \(device.status.rawValue)") }
        return device
    }

    func registerKey(deviceID: String, wrapped: [UInt8], kcv: String) throws -> Int {
        guard let existing = try device(deviceID) else {
            try connection.execute(
                """
                INSERT INTO devices (device_id, status, key_version, next_emm_sequence, created_at, updated_at)
                VALUES (?, 'active', 1, 1, ?, ?)
                """, .text(deviceID), .int64(now), .int64(now))
            try connection.execute(
                "INSERT INTO device_keys (device_id, version, wrapped_key, kcv, created_at) VALUES (?, 1, ?, ?, ?)",
                .text(deviceID), .blob(wrapped), .text(kcv), .int64(now))
            audit(action: "device_registered", deviceID: deviceID, detail: "key version 1, KCV \(kcv)")
            return 0
        }
        guard existing.status != .revoked else { throw RuleViolation("device \(deviceID) is revoked") }
        guard let currentWrapped = existing.wrappedKey, let currentKCV = existing.kcv else {
            throw RuleViolation("device \(deviceID) has no current key")
        }
        let newKey = try AESKeyWrap.unwrap(wrapped, kek: kek)
        if currentKCV == kcv, try AESKeyWrap.unwrap(currentWrapped, kek: kek) == newKey {
            audit(action: "key_unchanged", deviceID: deviceID, detail: "KCV \(kcv)")
            return 0
        }
        // Rotation: the new key travels to the box under the old one.
        let oldVersion = existing.keyVersion
        let newVersion = oldVersion + 1
        guard newVersion <= Int(UInt16.max) else { throw RuleViolation("device \(deviceID) has used every key version") }
        try connection.execute(
            "UPDATE device_keys SET retired_at = ? WHERE device_id = ? AND version = ?", .int64(now), .text(deviceID),
            .int64(Int64(oldVersion)))
        try connection.execute(
            "INSERT INTO device_keys (device_id, version, wrapped_key, kcv, created_at) VALUES (?, ?, ?, ?, ?)",
            .text(deviceID), .int64(Int64(newVersion)), .blob(wrapped), .text(kcv), .int64(now))
        try connection.execute(
            "UPDATE devices SET key_version = ?, updated_at = ? WHERE device_id = ?", .int64(Int64(newVersion)),
            .int64(now), .text(deviceID))
        var built = 0
        let update = EMMPayload.keyUpdate(KeyUpdate(newKeyVersion: UInt16(newVersion), newKey: newKey))
        try storeEMM(deviceID: deviceID, keyVersion: oldVersion, wrappedKey: currentWrapped,
            storedSequence: existing.nextSequence, payload: update,
            repeatMs: schedule.keyUpdateRepeatMs, expiresAt: now + schedule.keyUpdateLifetimeMs, urgent: true)
        built += 1
        // EMMs under the old key stop; live entitlements are re-sent under the new key.
        try expireEMMs(
            "UPDATE emms SET expires_at = ? WHERE device_id = ? AND kind <> 'key_update' AND expires_at > ?",
            .int64(now), .text(deviceID), .int64(now))
        for row in try connection.query(
            "SELECT product_id, starts_at, ends_at FROM entitlements WHERE device_id = ? AND status = 'active' AND ends_at > ?",
            .text(deviceID), .int64(now))
        {
            let grant = try grantPayload(productID: try row.int64("product_id"), startsAt: try row.int64("starts_at"),
                endsAt: try row.int64("ends_at"))
            try storeEMM(deviceID: deviceID, keyVersion: newVersion, wrappedKey: wrapped,
                storedSequence: existing.nextSequence, payload: grant,
                repeatMs: schedule.entitlementRepeatMs, expiresAt: try row.int64("ends_at"), urgent: false)
            built += 1
        }
        audit(action: "key_rotated", deviceID: deviceID,
            detail: "key version \(oldVersion) -> \(newVersion), KCV \(kcv)")
        return built
    }

    func setStatus(deviceID: String, status: DeviceStatus) throws -> Int {
        guard let existing = try device(deviceID) else { throw RuleViolation("unknown device \(deviceID)") }
        if existing.status == status { return 0 }
        guard existing.status != .revoked else { throw RuleViolation("device \(deviceID) is revoked for good") }
        try connection.execute(
            "UPDATE devices SET status = ?, updated_at = ? WHERE device_id = ?", .text(status.rawValue), .int64(now),
            .text(deviceID))
        if status == .revoked {
            // A revoked device gets no more EMMs: take its live ones off air now.
            try expireEMMs(
                "UPDATE emms SET expires_at = ? WHERE device_id = ? AND expires_at > ?", .int64(now), .text(deviceID),
                .int64(now))
        }
        let action = status == .active ? "device_resumed" : status == .suspended ? "device_suspended" : "device_revoked"
        audit(action: action, deviceID: deviceID, detail: nil)
        return 0
    }

    // MARK: Entitlements

    func grantPayload(productID: Int64, startsAt: Millis, endsAt: Millis) throws -> EMMPayload {
        .entitlementAdd(EntitlementGrant(productID: UInt16(productID), start: seconds(startsAt), end: seconds(endsAt)))
    }

    func addEntitlement(_ request: AddEntitlementRequest) throws -> Int {
        let device = try activeDevice(request.deviceID)
        // Merge with every active entitlement for the product that overlaps or touches.
        let overlapping = try connection.query(
            """
            SELECT id, starts_at, ends_at, request_id FROM entitlements
            WHERE device_id = ? AND product_id = ? AND status = 'active' AND starts_at <= ? AND ends_at >= ?
            ORDER BY id
            """, .text(request.deviceID), .int64(Int64(request.productID)), .int64(request.endsAt),
            .int64(request.startsAt))
        var start = request.startsAt
        var end = request.endsAt
        for row in overlapping {
            start = min(start, try row.int64("starts_at"))
            end = max(end, try row.int64("ends_at"))
            // The merged entitlement's earlier EMMs are superseded by the one built below.
            try expireEMMs(
                "UPDATE emms SET expires_at = ? WHERE device_id = ? AND request_id = ? AND kind = 'entitlement_add' AND expires_at > ?",
                .int64(now), .text(request.deviceID), .text(try row.text("request_id")), .int64(now))
        }
        if let keep = overlapping.first {
            try connection.execute(
                "UPDATE entitlements SET starts_at = ?, ends_at = ?, request_id = ? WHERE id = ?", .int64(start),
                .int64(end), .text(command.requestID), .int64(try keep.int64("id")))
            for row in overlapping.dropFirst() {
                try connection.execute("DELETE FROM entitlements WHERE id = ?", .int64(try row.int64("id")))
            }
        } else {
            try connection.execute(
                """
                INSERT INTO entitlements (device_id, product_id, starts_at, ends_at, status, request_id, created_at)
                VALUES (?, ?, ?, ?, 'active', ?, ?)
                """, .text(request.deviceID), .int64(Int64(request.productID)), .int64(start), .int64(end),
                .text(command.requestID), .int64(now))
        }
        try storeEMM(deviceID: request.deviceID, device: device,
            payload: try grantPayload(productID: Int64(request.productID), startsAt: start, endsAt: end),
            repeatMs: schedule.entitlementRepeatMs, expiresAt: end, urgent: false)
        audit(action: "entitlement_activated", deviceID: request.deviceID,
            detail: "product \(request.productID) \(ISO8601.format(start)) to \(ISO8601.format(end))"
                + (overlapping.isEmpty ? "" : ", merged with \(overlapping.count) existing"))
        return 1
    }

    func cancelEntitlement(deviceID: String, productID: UInt16) throws -> Int {
        guard let device = try device(deviceID) else { throw RuleViolation("unknown device \(deviceID)") }
        let active = try connection.query(
            "SELECT id, ends_at, request_id FROM entitlements WHERE device_id = ? AND product_id = ? AND status = 'active' AND ends_at > ?",
            .text(deviceID), .int64(Int64(productID)), .int64(now))
        guard !active.isEmpty else { throw RuleViolation("device \(deviceID) has no active entitlement to product \(productID)") }
        var latestEnd = now
        for row in active {
            latestEnd = max(latestEnd, try row.int64("ends_at"))
            try connection.execute(
                "UPDATE entitlements SET status = 'cancelled', cancelled_at = ? WHERE id = ?", .int64(now),
                .int64(try row.int64("id")))
            try expireEMMs(
                "UPDATE emms SET expires_at = ? WHERE device_id = ? AND request_id = ? AND kind = 'entitlement_add' AND expires_at > ?",
                .int64(now), .text(deviceID), .text(try row.text("request_id")), .int64(now))
        }
        audit(action: "entitlement_deactivated", deviceID: deviceID, detail: "product \(productID)")
        // A revoked device gets no more EMMs; a suspended one still hears of the cancel.
        guard device.status != .revoked else { return 0 }
        // The cancel stays on air as long as the entitlement would have lasted, so a box
        // that was off cannot keep the product by missing it.
        try storeEMM(deviceID: deviceID, device: device,
            payload: .entitlementCancel(productID: productID), repeatMs: schedule.entitlementRepeatMs,
            expiresAt: latestEnd, urgent: true)
        return 1
    }

    // MARK: On-screen messages

    func sendOSM(_ request: OSMRequest) throws -> Int {
        let message = request.message
        // Every target is checked before anything is written: a list with one unknown or
        // inactive device is refused whole.
        var targets: [(id: String, device: DeviceRow)] = []
        switch request.target {
        case .device(let id):
            targets = [(id, try activeDevice(id))]
        case .devices(let ids):
            targets.reserveCapacity(ids.count)
            for id in ids { targets.append((id, try activeDevice(id))) }
        case .all:
            // One statement for the whole fan-out: every active device with its current key.
            targets = try connection.query(activeDevicesSQL).map { (try $0.text("device_id"), try deviceRow($0)) }
        }
        let position = message.position.map { "\($0.x),\($0.y)" }
        if case .all = request.target {
            try insertOSMRow(request: request, targetKind: "all", deviceID: nil, position: position)
        } else {
            for target in targets {
                try insertOSMRow(request: request, targetKind: "device", deviceID: target.id, position: position)
            }
        }
        let payload = EMMPayload.onScreenMessage(
            GatehouseEMM.OnScreenMessage(
                style: style(message.kind), priority: message.priority, durationSeconds: message.durationSeconds,
                start: seconds(message.startsAt), expiry: seconds(message.expiresAt), repeatCount: message.repeatCount,
                position: message.position.map { GatehouseEMM.ScreenPosition(x: $0.x, y: $0.y) } ?? .random,
                text: message.text))
        let repeatMs = message.isUrgent ? schedule.urgentRepeatMs : schedule.messageRepeatMs
        for target in targets {
            try storeEMM(deviceID: target.id, device: target.device, payload: payload, repeatMs: repeatMs,
                expiresAt: message.expiresAt, urgent: message.isUrgent)
        }
        audit(action: "message_sent", deviceID: targets.count == 1 ? targets[0].id : nil,
            detail: "\(message.kind.rawValue) to \(targets.count) device(s), priority \(message.priority)")
        return targets.count
    }

    func insertOSMRow(request: OSMRequest, targetKind: String, deviceID: String?, position: String?) throws {
        let m = request.message
        try connection.execute(
            """
            INSERT INTO generate_osm (request_id, target_kind, device_id, kind, text, priority, duration_ms, starts_at,
                expires_at, repeat_count, fingerprint_position, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, .text(command.requestID), .text(targetKind), SQLValue(deviceID), .text(m.kind.rawValue), .text(m.text),
            .int64(Int64(m.priority)), .int64(Int64(m.durationSeconds) * 1000), .int64(m.startsAt), .int64(m.expiresAt),
            .int64(Int64(m.repeatCount)), SQLValue(position), .int64(now))
    }

    func style(_ kind: OSMKind) -> OSMStyle {
        switch kind {
        case .scrollTop: .scrollingTop
        case .scrollBottom: .scrollingBottom
        case .forced: .forced
        case .mailbox: .mailbox
        case .fingerprint: .fingerprint
        }
    }

    // MARK: EMMs

    /// Runs an UPDATE of `emms` after writing the EMMs this transaction has queued, so it
    /// sees every EMM built before it, as if each had been inserted at once.
    func expireEMMs(_ sql: String, _ parameters: SQLValue...) throws {
        try writes.flushEMMs(connection)
        try connection.execute(sql, parameters)
    }

    /// Seals one EMM under the device's current key (as read in this transaction).
    func storeEMM(deviceID: String, device: DeviceRow, payload: EMMPayload, repeatMs: Int64, expiresAt: Millis,
        urgent: Bool) throws
    {
        guard let wrappedKey = device.wrappedKey else {
            throw RuleViolation("device \(deviceID) has no key version \(device.keyVersion)")
        }
        try storeEMM(deviceID: deviceID, keyVersion: device.keyVersion, wrappedKey: wrappedKey,
            storedSequence: device.nextSequence, payload: payload, repeatMs: repeatMs, expiresAt: expiresAt,
            urgent: urgent)
    }

    /// Seals one EMM for a device under the key stored as `wrappedKey`, with the device's
    /// next sequence number (`storedSequence` as read in this transaction, unless the
    /// transaction already handed out numbers for it), and stores it with its carousel
    /// schedule.
    func storeEMM(deviceID: String, keyVersion: Int, wrappedKey: [UInt8], storedSequence: Int64,
        payload: EMMPayload, repeatMs: Int64, expiresAt: Millis, urgent: Bool) throws
    {
        let sequence = writes.takeSequence(deviceID, stored: storedSequence)
        let timestamp = seconds(now)
        let kek = self.kek
        let section = try applier.sealers.withLock { cache in
            try cache.seal(deviceID: deviceID, keyVersion: keyVersion, wrappedKey: wrappedKey, kek: kek) { addressing in
                EMM(addressing: addressing, keyVersion: UInt16(keyVersion), sequenceNumber: UInt64(sequence),
                    timestamp: timestamp, payload: payload)
            }
        }
        let expiry = min(expiresAt, now + schedule.maximumLifetimeMs)
        writes.emms.append(
            TransactionWrites.EMMRow(
                deviceID: deviceID, requestID: command.requestID, kind: payload.kindName, tableID: Int64(section[0]),
                sequence: sequence, section: section, at: now, repeatMs: repeatMs, expiresAt: max(expiry, now + 1),
                urgent: urgent))
    }

    func seconds(_ millis: Millis) -> UInt32 { UInt32(clamping: max(0, millis / 1000)) }
}

/// What one transaction writes together, in fewer statements: the EMM and audit rows of
/// every command in the batch go in multi-row INSERTs, and each device's EMM sequence
/// counter is written back once, however many EMMs it got. Nothing reads `audit_log` in the
/// transaction; every read of a device's counter goes through `sequences` first; and queued
/// EMMs are written before any statement that touches `emms` (`ApplyContext.expireEMMs`) —
/// so writing them late changes nothing a command sees. A rollback discards the queue with
/// the rest; a constraint broken by a queued row (a duplicate sequence number) fails the
/// transaction at the flush instead of at the row, which is the same outcome.
final class TransactionWrites {
    /// Per device, the next EMM sequence number after those this transaction handed out.
    private(set) var sequences: [String: Int64] = [:]
    /// Devices in the order they first got a number (the order of the write-back).
    private var sequenced: [String] = []

    /// The next sequence number for `deviceID`: `stored` (its `next_emm_sequence` as this
    /// transaction read it) for its first EMM in the transaction, then one more each time.
    func takeSequence(_ deviceID: String, stored: Int64) -> Int64 {
        let sequence = sequences[deviceID] ?? stored
        if sequences.updateValue(sequence + 1, forKey: deviceID) == nil { sequenced.append(deviceID) }
        return sequence
    }

    struct AuditRow {
        var at: Millis
        var actor: String
        var action: String
        var deviceID: String?
        var requestID: String
        var detail: String?
    }

    var audit: [AuditRow] = []

    /// An `emms` row (`send_count` 0; `first_send_at` and `created_at` are both `at`).
    struct EMMRow {
        var deviceID: String
        var requestID: String
        var kind: String
        var tableID: Int64
        var sequence: Int64
        var section: [UInt8]
        var at: Millis
        var repeatMs: Int64
        var expiresAt: Millis
        var urgent: Bool
    }

    var emms: [EMMRow] = []

    /// Rows per INSERT, largest first: 200 rows take 4 statements (3 × 64 + 8), and there are
    /// only three statement texts per table for the prepared-statement caches (64 entries,
    /// shared by every caller of the connection).
    static let chunkSizes = [64, 8, 1]

    static func insertSQL(_ prefix: String, row: String) -> [Int: String] {
        Dictionary(
            uniqueKeysWithValues: chunkSizes.map { size in
                (size, prefix + " VALUES " + Array(repeating: row, count: size).joined(separator: ", "))
            })
    }
    static let auditSQL = insertSQL(
        "INSERT INTO audit_log (at, actor, action, device_id, request_id, detail)", row: "(?, ?, ?, ?, ?, ?)")
    static let emmSQL = insertSQL(
        "INSERT INTO emms (device_id, request_id, kind, table_id, sequence, section, first_send_at, "
            + "repeat_interval_ms, expires_at, urgent, send_count, created_at)",
        row: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)")

    /// Inserts `rows` in order, in chunks of `chunkSizes`; `bind` appends one row's values.
    static func insert<Row>(
        _ rows: [Row], _ sql: [Int: String], columns: Int, _ connection: any SQLConnection,
        bind: (Row, inout [SQLValue]) -> Void
    ) throws {
        var start = 0
        for size in chunkSizes {
            guard let text = sql[size] else { continue }
            while rows.count - start >= size {
                var parameters: [SQLValue] = []
                parameters.reserveCapacity(size * columns)
                for row in rows[start..<(start + size)] { bind(row, &parameters) }
                try connection.execute(text, parameters)
                start += size
            }
        }
    }

    /// Writes the queued EMMs, in the order they were built, and empties that queue.
    func flushEMMs(_ connection: any SQLConnection) throws {
        guard !emms.isEmpty else { return }
        try Self.insert(emms, Self.emmSQL, columns: 11, connection) { row, p in
            p.append(.text(row.deviceID))
            p.append(.text(row.requestID))
            p.append(.text(row.kind))
            p.append(.int64(row.tableID))
            p.append(.int64(row.sequence))
            p.append(.blob(row.section))
            p.append(.int64(row.at))
            p.append(.int64(row.repeatMs))
            p.append(.int64(row.expiresAt))
            p.append(.int64(row.urgent ? 1 : 0))
            p.append(.int64(row.at))
        }
        emms.removeAll(keepingCapacity: true)
    }

    /// Writes everything queued, in order (EMM and audit ids follow command order), and
    /// empties the queues.
    func flush(_ connection: any SQLConnection) throws {
        try flushEMMs(connection)
        for deviceID in sequenced {
            guard let next = sequences[deviceID] else { continue }
            try connection.execute(
                "UPDATE devices SET next_emm_sequence = ? WHERE device_id = ?", .int64(next), .text(deviceID))
        }
        sequences.removeAll(keepingCapacity: true)
        sequenced.removeAll(keepingCapacity: true)
        try Self.insert(audit, Self.auditSQL, columns: 6, connection) { row, p in
            p.append(.int64(row.at))
            p.append(.text(row.actor))
            p.append(.text(row.action))
            p.append(SQLValue(row.deviceID))
            p.append(.text(row.requestID))
            p.append(SQLValue(row.detail))
        }
        audit.removeAll(keepingCapacity: true)
    }
}
