import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseDomain
import GatehouseHTTP
import GatehouseStore

/// The REST API an operator's subscriber management system calls. Writes are validated
/// field by field, stored durably (request + outbox, one transaction) and answered
/// `202 Accepted`; the worker applies them. Reads come straight from the store.
public final class APIService: Sendable {
    let database: any SQLDatabase
    let ledger: RequestLedger
    let kek: KeyEncryptionKey
    let configuration: APIConfiguration
    let metrics: MetricsRegistry
    /// Other registries served at `/metrics` too (the monitor's, in `serve`).
    let extraMetrics: [MetricsRegistry]
    private let acceptedByKind: LabeledCounters<String>
    let logger: Logger

    /// - Parameter publisher: puts each command on the bus in its request's transaction
    ///   (the embedded bus; see `InTransactionPublisher`); `nil` leaves it to the outbox relay.
    public init(database: any SQLDatabase, kek: KeyEncryptionKey, configuration: APIConfiguration = APIConfiguration(),
        publisher: InTransactionPublisher? = nil, metrics: MetricsRegistry, extraMetrics: [MetricsRegistry] = [],
        logger: Logger)
    {
        self.extraMetrics = extraMetrics
        self.database = database
        self.ledger = RequestLedger(database: database, configuration: configuration, publisher: publisher)
        self.kek = kek
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.acceptedByKind = LabeledCounters(
            metrics, "gatehouse_api_requests_accepted_total", help: "Write requests durably accepted, by kind",
            label: "kind")
        let ledger = self.ledger
        let commits = metrics.counter(
            "gatehouse_api_commits_total",
            help: "Write transactions run for accepted requests (group commits, rolled-back ones included)")
        let committed = metrics.counter(
            "gatehouse_api_committed_requests_total", help: "Accepted requests those transactions committed")
        metrics.addCollector {
            let statistics = ledger.groupCommit.statistics
            commits.set(Double(statistics.transactions))
            committed.set(Double(statistics.pieces))
        }
    }

    /// Every route of the API, with the scope each one requires.
    public func makeRouter(authenticator: any TokenAuthenticator) -> Router {
        var router = Router(authenticator: authenticator, logger: logger)
        router.retryAfterSeconds = configuration.retryAfterSeconds
        router.add(.get, "/healthz", access: .public) { _ in .json(bytes: Array(#"{"status":"ok"}"#.utf8)) }
        router.add(.get, "/readyz", access: .public) { [self] _ in try readiness() }
        router.add(.get, "/metrics", access: .public) { [metrics, extraMetrics] _ in
            .text(
                ([metrics] + extraMetrics).map { $0.render() }.joined(),
                contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.add(.get, "/openapi.json", access: .public) { _ in .json(bytes: Array(OpenAPIDocument.json.utf8)) }

        router.add(.post, "/device_keys", access: .requires(.keys)) { [self] request in
            let body = try parseBody(request)
            let parsed = try validated { () throws(ValidationError) in try DeviceKeyRequest.parse(body) }
            return try acceptDeviceKey(request, deviceID: parsed.deviceID, clearKey: parsed.key, canonical: body)
        }
        router.add(.post, "/devices/{device_id}/key", access: .requires(.keys)) { [self] request in
            let deviceID = try pathDeviceID(request)
            var body = try parseBody(request)
            let reader = FieldReader(body)
            let key = try validated { () throws(ValidationError) in
                try reader.rejectUnknown(allowed: ["key"])
                return try Validate.hexKey(try reader.requiredString("key"))
            }
            body["device_id"] = .string(deviceID)
            return try acceptDeviceKey(request, deviceID: deviceID, clearKey: key, canonical: body)
        }
        router.add(.post, "/add_entitlement", access: .requires(.write)) { [self] request in
            let body = try parseBody(request)
            let now = ISO8601.nowMillis()
            let parsed = try validated { () throws(ValidationError) in try AddEntitlementRequest.parse(body, now: now) }
            return try accept(request, action: .addEntitlement(parsed), canonical: body, now: now)
        }
        router.add(.post, "/cancel_entitlement", access: .requires(.write)) { [self] request in
            let body = try parseBody(request)
            let reader = FieldReader(body)
            let (deviceID, productID) = try validated { () throws(ValidationError) in
                try reader.rejectUnknown(allowed: ["device_id", "product_id"])
                return (
                    try Validate.deviceID(try reader.requiredString("device_id")),
                    try Validate.productID(try reader.integer("product_id", in: Int64.min...Int64.max))
                )
            }
            return try accept(
                request, action: .cancelEntitlement(deviceID: deviceID, productID: productID), canonical: body,
                now: ISO8601.nowMillis())
        }
        router.add(.delete, "/devices/{device_id}/entitlements/{product_id}", access: .requires(.write)) {
            [self] request in
            let deviceID = try pathDeviceID(request)
            let productID = try validated { () throws(ValidationError) in
                // Not an integer (or past Int64) is out of range too, not "required".
                try Validate.productID(Int64(request.pathParameters["product_id"] ?? "") ?? 0, field: "product_id")
            }
            let canonical: [String: JSONValue] = [
                "device_id": .string(deviceID), "product_id": .number(Double(productID)), "op": .string("cancel"),
            ]
            return try accept(
                request, action: .cancelEntitlement(deviceID: deviceID, productID: productID), canonical: canonical,
                now: ISO8601.nowMillis())
        }
        router.add(.post, "/generate_osm", access: .requires(.write)) { [self] request in
            let body = try parseBody(request)
            let now = ISO8601.nowMillis()
            let parsed = try validated { () throws(ValidationError) in try OSMRequest.parse(body, now: now) }
            return try accept(request, action: .sendOSM(parsed), canonical: body, now: now)
        }
        for (verb, status) in [("suspend", DeviceStatus.suspended), ("resume", .active), ("revoke", .revoked)] {
            router.add(.post, "/devices/{device_id}/\(verb)", access: .requires(.write)) { [self] request in
                let deviceID = try pathDeviceID(request)
                try rejectNonEmptyBody(request)
                let canonical: [String: JSONValue] = ["device_id": .string(deviceID), "op": .string(verb)]
                return try accept(
                    request, action: .setDeviceStatus(deviceID: deviceID, status: status), canonical: canonical,
                    now: ISO8601.nowMillis())
            }
        }

        router.add(.get, "/requests/{request_id}", access: .requires(.read)) { [self] request in
            try requestStatus(request.pathParameters["request_id"] ?? "")
        }
        router.add(.get, "/devices", access: .requires(.read)) { [self] request in try listDevices(request) }
        router.add(.get, "/devices/{device_id}", access: .requires(.read)) { [self] request in
            try device(try pathDeviceID(request))
        }
        router.add(.get, "/devices/{device_id}/key", access: .requires(.read)) { [self] request in
            try keyStatus(try pathDeviceID(request))
        }
        router.add(.get, "/devices/{device_id}/entitlements", access: .requires(.read)) { [self] request in
            try entitlements(try pathDeviceID(request))
        }
        router.add(.get, "/audit", access: .requires(.read)) { [self] request in try auditLog(request, export: false) }
        router.add(.get, "/audit/export", access: .requires(.read)) { [self] request in
            try auditLog(request, export: true)
        }
        router.add(.get, "/osm", access: .requires(.read)) { [self] request in try listOSM(request) }
        router.add(.get, "/osm/{id}", access: .requires(.read)) { [self] request in
            guard let id = Int64(request.pathParameters["id"] ?? ""), id > 0 else {
                throw HTTPError.notFound("no on-screen message with this id")
            }
            return try osm(id)
        }
        return router
    }

    // MARK: Writes

    private func acceptDeviceKey(_ request: HTTPRequest, deviceID: String, clearKey: [UInt8],
        canonical: [String: JSONValue]) throws -> HTTPResponse
    {
        var clear = clearKey
        defer { SecureMemory.zero(&clear) }
        let key = try SymmetricKey(bytes: clear)
        let wrapped = try kek.wrap(key)
        let action = Action.registerDeviceKey(
            deviceID: deviceID, wrappedKey: Data(wrapped), kcv: key.keyCheckValue, keyBits: key.byteCount * 8)
        return try accept(request, action: action, canonical: canonical, now: ISO8601.nowMillis())
    }

    private func accept(_ request: HTTPRequest, action: Action, canonical: [String: JSONValue], now: Millis)
        throws -> HTTPResponse
    {
        let actor = request.caller?.name ?? "anonymous"
        var idempotencyKey: String?
        if let key = request.headers["Idempotency-Key"] {
            guard !key.isEmpty, key.utf8.count <= 128, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
                throw HTTPError.invalidInput(
                    "Idempotency-Key must be 1 to 128 visible ASCII characters", field: "Idempotency-Key")
            }
            // Scoped to the caller so two clients cannot collide; hashed to fit the column.
            idempotencyKey = try SHA256.hexDigest(of: actor + "\n" + key)
        }
        let digest = try kek.digest(request.method.rawValue + " " + request.path + "\n" + JSONValue.object(canonical).rendered)
        let command = Command(
            requestID: RequestIdentifier.make(now: now), actor: actor, acceptedAt: now, action: action)
        // Answered from the group commit's thread once the request is durable: no HTTP
        // thread waits for the commit.
        let answer = DeferredResponse()
        let (requestID, path) = (request.requestID, request.path)
        try ledger.accept(command, idempotencyKey: idempotencyKey, bodyDigest: digest) { [self] result in
            switch result {
            case .success(let accepted):
                acceptedByKind(command.kind).increment()
                answer.resolve(Self.acceptedResponse(accepted, command))
            case .failure(let error):
                answer.resolve(
                    HTTPError.answer(
                        to: error, requestID: requestID, route: path, logger: logger,
                        retryAfterSeconds: configuration.retryAfterSeconds))
            }
        }
        return .deferred(answer)
    }

    private static func acceptedResponse(_ accepted: AcceptedRequest, _ command: Command) -> HTTPResponse {
        let body = #"{"request_id":"\#(accepted.requestID)","status":"accepted"}"#
        var response = HTTPResponse.json(
            status: .accepted, bytes: Array(body.utf8), headers: ["Location": "/requests/\(accepted.requestID)"])
        // On the request's access-log line: one line per write, not two.
        response.accessLog = [
            "request.id": accepted.requestID, "request.kind": command.kind, "request.actor": command.actor,
            "request.replay": String(accepted.isReplay), "device.id": command.partitionKey,
        ]
        return response
    }

    // MARK: Reads

    private func readiness() throws -> HTTPResponse {
        do {
            _ = try database.readBlocking { try $0.queryFirst("SELECT 1 AS one") }
            return .json(bytes: Array(#"{"status":"ready"}"#.utf8))
        } catch {
            logger.warning("api.not_ready", ["error": String(describing: error)])
            throw HTTPError.unavailable("the database does not answer", retryAfterSeconds: configuration.retryAfterSeconds)
        }
    }

    private func requestStatus(_ requestID: String) throws -> HTTPResponse {
        guard !requestID.isEmpty, requestID.utf8.count <= 64 else { throw HTTPError.notFound("no request with this id") }
        let row = try database.readBlocking { connection in
            try connection.queryFirst(
                """
                SELECT request_id, kind, status, reason, token_name, accepted_at, processed_at, on_air_at
                FROM requests WHERE request_id = ?
                """, .text(requestID))
        }
        guard let row else { throw HTTPError.notFound("no request with this id") }
        let object: [String: JSONValue] = [
            "request_id": .string(try row.text("request_id")),
            "kind": .string(try row.text("kind")),
            "status": .string(try row.text("status")),
            "reason": try row.textOrNil("reason").map(JSONValue.string) ?? .null,
            "actor": .string(try row.textOrNil("token_name") ?? ""),
            "accepted_at": .string(ISO8601.format(try row.int64("accepted_at"))),
            "processed_at": try time(row, "processed_at"),
            "on_air_at": try time(row, "on_air_at"),
        ]
        return .json(bytes: JSONValue.object(object).renderedBytes)
    }

    private static let deviceColumns = """
        SELECT d.device_id, d.status, d.key_version, d.created_at, d.updated_at, k.kcv
        FROM devices d LEFT JOIN device_keys k ON k.device_id = d.device_id AND k.version = d.key_version
        """

    private func deviceJSON(_ row: SQLRow) throws -> JSONValue {
        .object([
            "device_id": .string(try row.text("device_id")),
            "status": .string(try row.text("status")),
            "key_version": .number(Double(try row.int64("key_version"))),
            "kcv": try row.textOrNil("kcv").map(JSONValue.string) ?? .null,
            "created_at": .string(ISO8601.format(try row.int64("created_at"))),
            "updated_at": .string(ISO8601.format(try row.int64("updated_at"))),
        ])
    }

    private func listDevices(_ request: HTTPRequest) throws -> HTTPResponse {
        let limit = try pageLimit(request)
        let after = request.query("after") ?? ""
        guard after.utf8.count <= 64 else { throw HTTPError.invalidInput("after is not a cursor of this list", field: "after") }
        let rows = try database.readBlocking { connection in
            try connection.query(
                Self.deviceColumns + " WHERE d.device_id > ? ORDER BY d.device_id LIMIT ?", .text(after),
                .int64(Int64(limit + 1)))
        }
        let page = rows.prefix(limit)
        let next: JSONValue = rows.count > limit ? .string(try page.last!.text("device_id")) : .null
        let object: [String: JSONValue] = ["devices": .array(try page.map(deviceJSON)), "next": next]
        return .json(bytes: JSONValue.object(object).renderedBytes)
    }

    private func device(_ deviceID: String) throws -> HTTPResponse {
        let row = try database.readBlocking { connection in
            try connection.queryFirst(Self.deviceColumns + " WHERE d.device_id = ?", .text(deviceID))
        }
        guard let row else { throw HTTPError.notFound("no device with this id") }
        return .json(bytes: try deviceJSON(row).renderedBytes)
    }

    private func keyStatus(_ deviceID: String) throws -> HTTPResponse {
        let row = try database.readBlocking { connection in
            try connection.queryFirst(
                """
                SELECT k.version, k.kcv, k.wrapped_key, k.created_at FROM devices d
                JOIN device_keys k ON k.device_id = d.device_id AND k.version = d.key_version
                WHERE d.device_id = ?
                """, .text(deviceID))
        }
        guard let row else { throw HTTPError.notFound("no device with this id") }
        // RFC 3394 adds 8 bytes to the key: 24 → AES-128, 40 → AES-256. Only the size leaves.
        let keyBits = (try row.blob("wrapped_key").count - 8) * 8
        let object: [String: JSONValue] = [
            "device_id": .string(deviceID),
            "key_version": .number(Double(try row.int64("version"))),
            "kcv": .string(try row.text("kcv")),
            "key_bits": .number(Double(keyBits)),
            "created_at": .string(ISO8601.format(try row.int64("created_at"))),
        ]
        return .json(bytes: JSONValue.object(object).renderedBytes)
    }

    private func entitlements(_ deviceID: String) throws -> HTTPResponse {
        let (exists, rows) = try database.readBlocking { connection in
            let exists = try connection.queryFirst("SELECT 1 AS one FROM devices WHERE device_id = ?", .text(deviceID)) != nil
            let rows = try connection.query(
                """
                SELECT product_id, starts_at, ends_at, status, request_id FROM entitlements
                WHERE device_id = ? ORDER BY product_id, starts_at
                """, .text(deviceID))
            return (exists, rows)
        }
        guard exists else { throw HTTPError.notFound("no device with this id") }
        let now = ISO8601.nowMillis()
        let items: [JSONValue] = try rows.map { row in
            let ends = try row.int64("ends_at")
            var status = try row.text("status")
            if status == "active" && ends <= now { status = "expired" }
            return .object([
                "product_id": .number(Double(try row.int64("product_id"))),
                "start_time": .string(ISO8601.format(try row.int64("starts_at"))),
                "end_time": .string(ISO8601.format(ends)),
                "status": .string(status),
                "request_id": try row.textOrNil("request_id").map(JSONValue.string) ?? .null,
            ])
        }
        let object: [String: JSONValue] = ["device_id": .string(deviceID), "entitlements": .array(items)]
        return .json(bytes: JSONValue.object(object).renderedBytes)
    }

    private static let osmColumns = """
        SELECT id, request_id, target_kind, device_id, kind, text, priority, duration_ms, starts_at, expires_at,
               repeat_count, fingerprint_position FROM generate_osm
        """

    private func osmJSON(_ row: SQLRow) throws -> JSONValue {
        var position: JSONValue = .null
        if let text = try row.textOrNil("fingerprint_position") {
            let parts = text.split(separator: ",").compactMap { Double($0) }
            if parts.count == 2 { position = .object(["x": .number(parts[0]), "y": .number(parts[1])]) }
        }
        return .object([
            "id": .number(Double(try row.int64("id"))),
            "request_id": .string(try row.text("request_id")),
            "target": .string(try row.text("target_kind")),
            "device_id": try row.textOrNil("device_id").map(JSONValue.string) ?? .null,
            "kind": .string(try row.text("kind")),
            "text": .string(try row.text("text")),
            "priority": .number(Double(try row.int64("priority"))),
            "duration": .number(Double(try row.int64("duration_ms") / 1000)),
            "start_time": .string(ISO8601.format(try row.int64("starts_at"))),
            "expiry_time": .string(ISO8601.format(try row.int64("expires_at"))),
            "repeat_count": .number(Double(try row.int64("repeat_count"))),
            "position": position,
        ])
    }

    private func listOSM(_ request: HTTPRequest) throws -> HTTPResponse {
        let limit = try pageLimit(request)
        var before = Int64.max
        if let after = request.query("after") {
            guard let value = Int64(after), value > 0 else {
                throw HTTPError.invalidInput("after is not a cursor of this list", field: "after")
            }
            before = value
        }
        let deviceFilter = try request.query("device_id").map { id in
            try validated { () throws(ValidationError) in try Validate.deviceID(id) }
        }
        let cursor = before
        let rows = try database.readBlocking { connection in
            if let deviceFilter {
                return try connection.query(
                    Self.osmColumns + " WHERE id < ? AND (device_id = ? OR target_kind = 'all') ORDER BY id DESC LIMIT ?",
                    .int64(cursor), .text(deviceFilter), .int64(Int64(limit + 1)))
            }
            return try connection.query(
                Self.osmColumns + " WHERE id < ? ORDER BY id DESC LIMIT ?", .int64(cursor), .int64(Int64(limit + 1)))
        }
        let page = rows.prefix(limit)
        let next: JSONValue = rows.count > limit ? .string(String(try page.last!.int64("id"))) : .null
        let object: [String: JSONValue] = ["messages": .array(try page.map(osmJSON)), "next": next]
        return .json(bytes: JSONValue.object(object).renderedBytes)
    }

    private func osm(_ id: Int64) throws -> HTTPResponse {
        let row = try database.readBlocking { connection in
            try connection.queryFirst(Self.osmColumns + " WHERE id = ?", .int64(id))
        }
        guard let row else { throw HTTPError.notFound("no on-screen message with this id") }
        return .json(bytes: try osmJSON(row).renderedBytes)
    }

    /// The append-only audit log: who asked for what, when, under which request. `/audit`
    /// pages newest first; `/audit/export` returns every matching entry oldest first as
    /// JSON lines (one object a line), what an auditor loads into a spreadsheet or archive.
    private func auditLog(_ request: HTTPRequest, export: Bool) throws -> HTTPResponse {
        var conditions: [String] = []
        var parameters: [SQLValue] = []
        if let device = request.query("device_id") {
            conditions.append("device_id = ?")
            parameters.append(.text(try validated { () throws(ValidationError) in try Validate.deviceID(device) }))
        }
        for (name, op) in [("since", ">="), ("until", "<")] {
            if let text = request.query(name) {
                let millis = try validated { () throws(ValidationError) in try Validate.time(text, field: name) }
                conditions.append("at \(op) ?")
                parameters.append(.int64(millis!))
            }
        }
        let limit = export ? 1_000_000 : try pageLimit(request)
        if !export, let after = request.query("after") {
            guard let id = Int64(after), id > 0 else { throw HTTPError.invalidInput("after is not a cursor of this list", field: "after") }
            conditions.append("id < ?")
            parameters.append(.int64(id))
        }
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT id, at, actor, action, device_id, request_id, detail FROM audit_log" + whereClause
            + (export ? " ORDER BY id ASC LIMIT ?" : " ORDER BY id DESC LIMIT ?")
        parameters.append(.int64(Int64(limit + 1)))
        let bound = parameters
        let rows = try database.readBlocking { connection in try connection.query(sql, bound) }
        let entries: [JSONValue] = try rows.prefix(limit).map { row in
            .object([
                "id": .number(Double(try row.int64("id"))),
                "at": .string(ISO8601.format(try row.int64("at"))),
                "actor": .string(try row.text("actor")),
                "action": .string(try row.text("action")),
                "device_id": try row.textOrNil("device_id").map(JSONValue.string) ?? .null,
                "request_id": try row.textOrNil("request_id").map(JSONValue.string) ?? .null,
                "detail": try row.textOrNil("detail").map(JSONValue.string) ?? .null,
            ])
        }
        if export {
            let text = entries.map { $0.rendered + "\n" }.joined()
            return HTTPResponse(status: .ok, headers: [
                "Content-Type": "application/x-ndjson",
                "Content-Disposition": "attachment; filename=\"gatehouse-audit.jsonl\"",
            ], body: Array(text.utf8))
        }
        var next: JSONValue = .null
        if rows.count > limit, case .object(let last)? = entries.last, case .number(let id)? = last["id"] {
            next = .string(String(Int64(id)))
        }
        return .json(bytes: JSONValue.object(["entries": .array(entries), "next": next]).renderedBytes)
    }

    // MARK: Helpers

    private func time(_ row: SQLRow, _ column: String) throws -> JSONValue {
        try row.int64OrNil(column).map { .string(ISO8601.format($0)) } ?? .null
    }

    private func pageLimit(_ request: HTTPRequest) throws -> Int {
        guard let text = request.query("limit") else { return 100 }
        guard let limit = Int(text), (1...configuration.maximumPageSize).contains(limit) else {
            throw HTTPError.invalidInput("limit must be from 1 to \(configuration.maximumPageSize)", field: "limit")
        }
        return limit
    }

    private func pathDeviceID(_ request: HTTPRequest) throws -> String {
        let raw = request.pathParameters["device_id"] ?? ""
        do {
            return try Validate.deviceID(raw)
        } catch {
            throw HTTPError.notFound("no device with this id")
        }
    }

    private func parseBody(_ request: HTTPRequest) throws -> [String: JSONValue] {
        try checkContentType(request)
        let object = try validated { () throws(ValidationError) in try JSONValue.parseObject(request.body) }
        try rejectOversizedNumbers(object, path: "")
        return object
    }

    /// Refuses numbers whose magnitude reaches 2^63 before any field reader sees them: such a
    /// value passes a `...Int64.max` range check as a `Double` (Int64.max rounds up to 2^63)
    /// and then traps in `Int64(_:)`, which took the whole process down
    /// (`{"product_id": 9223372036854775807}`). No field of this API needs numbers that large.
    private func rejectOversizedNumbers(_ object: [String: JSONValue], path: String) throws {
        for (key, value) in object {
            let field = path.isEmpty ? key : path + "." + key
            switch value {
            case .number(let n) where !(abs(n) < 9.223372036854775808e18):
                throw HTTPError.invalidInput("\(field) is out of range", field: field)
            case .object(let nested): try rejectOversizedNumbers(nested, path: field)
            default: break
            }
        }
    }

    private func rejectNonEmptyBody(_ request: HTTPRequest) throws {
        guard !request.body.isEmpty else { return }
        try checkContentType(request)
        let object = try validated { () throws(ValidationError) in try JSONValue.parseObject(request.body) }
        if let field = object.keys.sorted().first {
            throw HTTPError.invalidInput("this request takes no body fields", field: field)
        }
    }

    private func checkContentType(_ request: HTTPRequest) throws {
        // The media type before any parameters: application/json or a +json suffix type
        // (application/jsonfoo or text/plain+json;x=y are not JSON). Compared byte by byte:
        // every write passes here.
        guard let header = request.headers["Content-Type"] else { return }
        var type = Array(header.utf8.prefix { $0 != UInt8(ascii: ";") })
        while let last = type.last, last == 0x20 || last == 0x09 { type.removeLast() }
        let start = type.firstIndex { $0 != 0x20 && $0 != 0x09 } ?? type.endIndex
        type = type[start...].map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
        let application = Array("application/".utf8)
        let isJSON =
            type == Array("application/json".utf8)
            || (type.starts(with: application) && type.count >= application.count + 5
                && type.suffix(5).elementsEqual("+json".utf8))
        if !isJSON {
            throw HTTPError(.unsupportedMediaType, code: .unsupportedMediaType, message: "send the body as application/json")
        }
    }

    /// Runs a validation and turns its `ValidationError` into a 400 naming the field.
    private func validated<T>(_ body: () throws(ValidationError) -> T) throws(HTTPError) -> T {
        do {
            return try body()
        } catch {
            // "body" errors already say "the body …": no "body the body is not valid JSON".
            let message = error.field == "body" || error.message.hasPrefix(error.field)
                ? error.message : "\(error.field) \(error.message)"
            throw HTTPError.invalidInput(message,
                field: error.field)
        }
    }
}
