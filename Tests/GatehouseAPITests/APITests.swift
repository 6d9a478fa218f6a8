import Foundation
import GatehouseAPI
import GatehouseBus
import GatehouseCore
import GatehouseCrypto
import GatehouseDomain
import GatehouseHTTP
import GatehouseStore
import GatehouseTestSupport
import GatehouseWorker
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

private let key1 = "000102030405060708090a0b0c0d0e0f"
private let key2 = "f0e0d0c0b0a090807060504030201000f0e0d0c0b0a090807060504030201000"

@Suite("API over real HTTP, on SQLite and MariaDB", .serialized)
struct APITests {
    @Test(arguments: StoreKind.allCases)
    func authenticationAndScopes(kind: StoreKind) async throws {
        let stack = try await APIStack.start(kind)
        defer { Task { await stack.stop() } }
        #expect(try await stack.call("GET", "/healthz", token: nil).status == 200)
        #expect(try await stack.call("GET", "/readyz", token: nil).status == 200)
        let missing = try await stack.call("GET", "/devices", token: nil)
        #expect(missing.status == 401)
        #expect(missing.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
        #expect(try await stack.call("GET", "/devices", token: "gh_not_a_token").status == 401)
        #expect(try await stack.call("GET", "/devices", token: stack.reader).status == 200)
        let forbidden = try await stack.call(
            "POST", "/add_entitlement", token: stack.reader,
            body: #"{"device_id":"d1","product_id":1,"end_time":"2099-01-01T00:00:00Z"}"#)
        #expect(forbidden.status == 403)
        // Registering keys needs the keys scope, which the SMS token lacks.
        let noKeys = try await stack.call(
            "POST", "/device_keys", token: stack.writer, body: #"{"device_id":"d1","key":"\#(key1)"}"#)
        #expect(noKeys.status == 403)
        #expect(try await stack.count("requests") == 0)
    }

    @Test(arguments: StoreKind.allCases)
    func lifecycleFromAcceptedToProcessed(kind: StoreKind) async throws {
        let stack = try await APIStack.start(kind)
        defer { Task { await stack.stop() } }
        let register = try await stack.call(
            "POST", "/device_keys", token: stack.admin, body: #"{"device_id":"STB-1","key":"\#(key1)"}"#)
        #expect(register.status == 202)
        let requestID = try #require(register.string("request_id"))
        #expect(register.headers["location"] == "/requests/\(requestID)")
        let before = try await stack.call("GET", "/requests/\(requestID)", token: stack.reader)
        #expect(before.string("status") == "accepted")
        #expect(before.string("kind") == "device_key")
        #expect(before.string("actor") == "admin")

        let grant = try await stack.call(
            "POST", "/add_entitlement", token: stack.writer,
            body: #"{"device_id":"STB-1","product_id":42,"start_time":"2026-01-01T00:00:00Z","end_time":"2099-01-01T00:00:00Z"}"#)
        #expect(grant.status == 202)
        // The write's access-log line names the request it accepted (one line per write).
        let grantID = try #require(grant.string("request_id"))
        var accessLine: [String: String]?
        for _ in 0..<200 where accessLine == nil {
            accessLine = stack.logs.lines.lazy
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: String] }
                .first { $0["msg"] == "http.request" && $0["request.id"] == grantID }
            if accessLine == nil { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(accessLine?["http.status"] == "202")
        #expect(accessLine?["request.kind"] == "add_entitlement")
        #expect(accessLine?["request.actor"] == "sms")
        #expect(accessLine?["device.id"] == "STB-1")
        #expect(!stack.logs.lines.contains { $0.contains("api.request_accepted") })
        let osm = try await stack.call(
            "POST", "/generate_osm", token: stack.writer,
            body: #"{"device_id":"STB-1","kind":"mailbox","text":"Welcome","priority":3}"#)
        #expect(osm.status == 202)
        let unknown = try await stack.call(
            "POST", "/add_entitlement", token: stack.writer,
            body: #"{"device_id":"nobody","product_id":1,"end_time":"2099-01-01T00:00:00Z"}"#)
        #expect(unknown.status == 202)

        let outcomes = try await stack.drainOutbox()
        #expect(outcomes == [.processed(emms: 0), .processed(emms: 1), .processed(emms: 1),
            .failed(reason: "unknown device nobody: register its key first")])

        let after = try await stack.call("GET", "/requests/\(requestID)", token: stack.reader)
        #expect(after.string("status") == "processed")
        #expect(after.string("processed_at") != nil)
        let failed = try await stack.call("GET", "/requests/\(try #require(unknown.string("request_id")))", token: stack.reader)
        #expect(failed.string("status") == "failed")
        #expect(failed.string("reason") == "unknown device nobody: register its key first")

        let device = try await stack.call("GET", "/devices/STB-1", token: stack.reader)
        #expect(device.status == 200)
        #expect(device.string("status") == "active")
        #expect(device.string("kcv") == "C6A13B")  // KCV of 000102…0e0f, checked against openssl in the crypto tests
        let keyStatus = try await stack.call("GET", "/devices/STB-1/key", token: stack.reader)
        #expect(keyStatus.string("kcv") == "C6A13B")
        #expect(keyStatus.json["key_bits"] == .number(128))
        #expect(keyStatus.json["key_version"] == .number(1))
        let entitlements = try await stack.call("GET", "/devices/STB-1/entitlements", token: stack.reader)
        guard case .array(let items)? = entitlements.json["entitlements"], case .object(let first)? = items.first else {
            Issue.record("no entitlements in \(entitlements.text)")
            return
        }
        #expect(items.count == 1)
        #expect(first["product_id"] == .number(42))
        #expect(first["status"] == .string("active"))
        #expect(first["end_time"] == .string("2099-01-01T00:00:00.000Z"))
        let messages = try await stack.call("GET", "/osm?device_id=STB-1", token: stack.reader)
        guard case .array(let list)? = messages.json["messages"], case .object(let message)? = list.first else {
            Issue.record("no messages in \(messages.text)")
            return
        }
        #expect(message["text"] == .string("Welcome"))
        #expect(message["kind"] == .string("mailbox"))
        guard case .number(let osmID)? = message["id"] else { return }
        #expect(try await stack.call("GET", "/osm/\(Int(osmID))", token: stack.reader).status == 200)
        #expect(try await stack.call("GET", "/osm/999999", token: stack.reader).status == 404)
        #expect(try await stack.call("GET", "/devices/nobody", token: stack.reader).status == 404)
        #expect(try await stack.count("emms") == 2)

        // Cancel by resource path; the entitlement shows as cancelled.
        let cancel = try await stack.call("DELETE", "/devices/STB-1/entitlements/42", token: stack.writer)
        #expect(cancel.status == 202)
        #expect(try await stack.drainOutbox() == [.processed(emms: 1)])
        let cancelled = try await stack.call("GET", "/devices/STB-1/entitlements", token: stack.reader)
        #expect(cancelled.text.contains(#""status":"cancelled""#))

        // The audit log names each change, who asked, and the request.
        let audit = try await stack.call("GET", "/audit?device_id=STB-1", token: stack.reader)
        guard case .array(let entries)? = audit.json["entries"] else {
            Issue.record("no audit entries in \(audit.text)")
            return
        }
        let actions = entries.compactMap { entry -> String? in
            if case .object(let o) = entry, case .string(let a)? = o["action"] { return a }
            return nil
        }
        #expect(actions == ["entitlement_deactivated", "message_sent", "entitlement_activated", "device_registered"])
        #expect(audit.text.contains(#""actor":"admin""#) && audit.text.contains(#""actor":"sms""#))
        #expect(audit.text.contains(requestID))
        let export = try await stack.call("GET", "/audit/export", token: stack.reader)
        #expect(export.headers["content-type"] == "application/x-ndjson")
        let lines = export.text.split(separator: "\n")
        #expect(lines.count == 5)  // the four above and the failed request for "nobody"
        #expect(lines.first?.contains("device_registered") == true)
        #expect(try await stack.call("GET", "/audit?since=yesterday", token: stack.reader).errorField == "since")
    }

    @Test(arguments: StoreKind.allCases)
    func badInputNamesTheFieldAndStoresNothing(kind: StoreKind) async throws {
        let stack = try await APIStack.start(kind)
        defer { Task { await stack.stop() } }
        let cases: [(String, String, String)] = [
            ("/device_keys", #"{"device_id":"d1","key":"abc"}"#, "key"),
            ("/device_keys", #"{"device_id":"d 1","key":"\#(key1)"}"#, "device_id"),
            ("/add_entitlement", #"{"device_id":"d1","product_id":70000,"end_time":"2099-01-01T00:00:00Z"}"#, "product_id"),
            ("/add_entitlement", #"{"device_id":"d1","product_id":1,"end_time":"yesterday"}"#, "end_time"),
            ("/generate_osm", #"{"device_id":"d1","text":"x","kind":"popup"}"#, "kind"),
            ("/generate_osm", #"{"text":"x"}"#, "device_id"),
            ("/add_entitlement", "not json", "body"),
            ("/add_entitlement", #"{"device_id":"d1","product_id":1,"product_id":2}"#, "product_id"),
            ("/add_entitlement", #"{"device_id":"d1","product_id":1,}"#, "body"),
        ]
        for (path, body, field) in cases {
            let reply = try await stack.call("POST", path, token: stack.admin, body: body)
            #expect((400...422).contains(reply.status), "\(path) \(body) -> \(reply.status)")
            #expect(reply.errorField == field, "\(path) \(body) -> \(reply.text)")
        }
        let wrongType = try await stack.call(
            "POST", "/add_entitlement", token: stack.admin, body: nil,
            headers: ["Content-Type": "text/plain"])
        #expect(wrongType.status == 415)
        for contentType in ["application/jsonfoo", "text/plain+json", "application/json-seq", "json"] {
            let reply = try await stack.call(
                "POST", "/add_entitlement", token: stack.admin, body: #"{"device_id":"d1","product_id":1}"#,
                headers: ["Content-Type": contentType])
            #expect(reply.status == 415, "\(contentType) -> \(reply.status)")
        }
        #expect(try await stack.count("requests") == 0)
        #expect(try await stack.count("outbox") == 0)
    }

    @Test(arguments: StoreKind.allCases)
    func idempotencyKey(kind: StoreKind) async throws {
        let stack = try await APIStack.start(kind)
        defer { Task { await stack.stop() } }
        let body = #"{"device_id":"d1","product_id":5,"end_time":"2099-01-01T00:00:00Z"}"#
        let first = try await stack.call("POST", "/add_entitlement", token: stack.writer, body: body,
            headers: ["Idempotency-Key": "order-1"])
        // Same key, same meaning (other spacing and key order): the same request.
        let again = try await stack.call("POST", "/add_entitlement", token: stack.writer,
            body: #"{ "end_time":"2099-01-01T00:00:00Z", "product_id":5, "device_id":"d1" }"#,
            headers: ["Idempotency-Key": "order-1"])
        #expect(first.status == 202)
        #expect(again.status == 202)
        #expect(again.string("request_id") == first.string("request_id"))
        let other = try await stack.call("POST", "/add_entitlement", token: stack.writer,
            body: #"{"device_id":"d1","product_id":6,"end_time":"2099-01-01T00:00:00Z"}"#,
            headers: ["Idempotency-Key": "order-1"])
        #expect(other.status == 409)
        // Another caller's identical key is its own request.
        let admin = try await stack.call("POST", "/add_entitlement", token: stack.admin, body: body,
            headers: ["Idempotency-Key": "order-1"])
        #expect(admin.status == 202)
        #expect(admin.string("request_id") != first.string("request_id"))
        #expect(try await stack.count("requests") == 2)
        #expect(try await stack.count("outbox") == 2)
    }

    /// An SMS that retries before its first answer came sends the same key twice at once;
    /// both land in one group commit more often than not. Both must get the one request.
    @Test(arguments: StoreKind.allCases)
    func concurrentRetriesWithOneKeyGetOneRequest(kind: StoreKind) async throws {
        let stack = try await APIStack.start(kind)
        defer { Task { await stack.stop() } }
        let orders = 30
        var replies: [(order: Int, status: Int, id: String?)] = []
        try await withThrowingTaskGroup(of: (Int, Int, String?).self) { group in
            for order in 0..<orders {
                for _ in 0..<2 {
                    group.addTask {
                        let reply = try await stack.call("POST", "/add_entitlement", token: stack.writer,
                            body: #"{"device_id":"d1","product_id":\#(order + 1),"end_time":"2099-01-01T00:00:00Z"}"#,
                            headers: ["Idempotency-Key": "race-\(order)"])
                        return (order, reply.status, reply.string("request_id"))
                    }
                }
            }
            for try await reply in group { replies.append(reply) }
        }
        #expect(replies.allSatisfy { $0.status == 202 }, "\(replies.filter { $0.status != 202 })")
        for order in 0..<orders {
            let ids = Set(replies.filter { $0.order == order }.map(\.id))
            #expect(ids.count == 1 && ids.first! != nil, "order \(order): \(ids)")
        }
        #expect(try await stack.count("requests") == orders)
    }

    @Test(arguments: StoreKind.allCases)
    func backlogLimitAnswers503WithRetryAfter(kind: StoreKind) async throws {
        var configuration = APIConfiguration()
        configuration.outboxBacklogLimit = 3
        configuration.retryAfterSeconds = 7
        let stack = try await APIStack.start(kind, configuration: configuration)
        defer { Task { await stack.stop() } }
        var statuses: [Int] = []
        for product in 1...5 {
            let reply = try await stack.call("POST", "/add_entitlement", token: stack.writer,
                body: #"{"device_id":"d1","product_id":\#(product),"end_time":"2099-01-01T00:00:00Z"}"#)
            statuses.append(reply.status)
            if reply.status == 503 {
                #expect(reply.headers["retry-after"] == "7")
                #expect(reply.text.contains("retry in 7 s"))
            }
        }
        #expect(statuses == [202, 202, 202, 503, 503])
        #expect(try await stack.count("requests") == 3)
    }

    @Test(arguments: StoreKind.allCases)
    func onTheEmbeddedBusCommandsCommitWithTheirRequest(kind: StoreKind) async throws {
        var configuration = APIConfiguration()
        configuration.outboxBacklogLimit = 3
        let stack = try await APIStack.start(kind, configuration: configuration, embeddedBus: true)
        defer { Task { await stack.stop() } }
        var ids: [String] = []
        for product in 1...3 {
            let reply = try await stack.call("POST", "/add_entitlement", token: stack.writer,
                body: #"{"device_id":"d1","product_id":\#(product),"end_time":"2099-01-01T00:00:00Z"}"#)
            #expect(reply.status == 202)
            ids.append(try #require(reply.string("request_id")))
        }
        // On the bus already, in order, keyed by device; the outbox rows are stamped
        // published at acceptance, so the relay has nothing to move.
        let (bus, outbox) = try await stack.handle.database.read { connection in
            (
                try connection.query(
                    "SELECT message_offset, partition_key, payload FROM bus_messages "
                        + "WHERE topic = 'gatehouse.commands' ORDER BY message_offset"
                ).map { (try $0.int64("message_offset"), try $0.text("partition_key"), try $0.blob("payload")) },
                try connection.query("SELECT payload, created_at, published_at FROM outbox ORDER BY id")
                    .map { (try $0.blob("payload"), try $0.int64("created_at"), try $0.int64OrNil("published_at")) }
            )
        }
        #expect(bus.map(\.0) == [0, 1, 2])
        #expect(bus.allSatisfy { $0.1 == "d1" })
        #expect(try bus.map { try Command.decode($0.2).requestID } == ids)
        #expect(outbox.map(\.0) == bus.map(\.2))
        #expect(outbox.allSatisfy { $0.2 == $0.1 })
        let relay = OutboxRelay(
            database: stack.handle.database, producer: EmbeddedBusProducer(database: stack.handle.database, logger: .disabled),
            topic: "gatehouse.commands", logger: .disabled)
        #expect(try await relay.runOnce() == 0)

        // The backlog is what the worker has not taken from the bus.
        let refused = try await stack.call("POST", "/add_entitlement", token: stack.writer,
            body: #"{"device_id":"d1","product_id":4,"end_time":"2099-01-01T00:00:00Z"}"#)
        #expect(refused.status == 503)
        let consumer = EmbeddedBusConsumer(
            database: stack.handle.database, group: "gatehouse-worker", topics: ["gatehouse.commands"], logger: .disabled)
        let records = try await consumer.poll(maxRecords: 10, timeout: .seconds(2))
        #expect(records.count == 3)
        for record in records {
            // d1 was never registered: applied as a refusal, which still takes it off the backlog.
            #expect(try await stack.applier.apply(try Command.decode(record.value)) != .alreadyApplied)
        }
        try await consumer.commit(records[records.count - 1])
        try await Task.sleep(for: .milliseconds(600))  // the backlog is measured at most every 500 ms
        let again = try await stack.call("POST", "/add_entitlement", token: stack.writer,
            body: #"{"device_id":"d1","product_id":4,"end_time":"2099-01-01T00:00:00Z"}"#)
        #expect(again.status == 202)
        #expect(try await stack.count("bus_messages") == 4)
        #expect(try await stack.count("requests") == 4)
    }

    @Test
    func responseMetricsCountTheRealStatusOfWrites() async throws {
        // As `gatehouse api` runs it: APIServer counts every answer by status code.
        let handle = try await TestDatabases.make(.sqlite)
        defer { Task { await handle.close() } }
        let metrics = MetricsRegistry()
        var configuration = APIConfiguration()
        configuration.outboxBacklogLimit = 1
        let service = APIService(
            database: handle.database, kek: try KeyEncryptionKey(key: try SymmetricKey.random(size: .bits256)),
            configuration: configuration, metrics: metrics, logger: .disabled)
        let tokens = APITokens(database: handle.database)
        let token = try await tokens.create(name: "sms", scopes: [.read, .write], now: 0)
        let api = APIServer(
            service: service, httpConfiguration: HTTPServerConfiguration(address: HTTPServerAddress(host: "127.0.0.1", port: 0)),
            tokens: try await StoredTokenAuthenticator(tokens: tokens), logger: .disabled)
        try api.server.start()
        defer { api.server.shutdown() }
        let base = "http://127.0.0.1:\(api.server.boundAddress!.port)"
        for product in 1...2 {
            var request = URLRequest(url: URL(string: base + "/add_entitlement")!)
            request.httpMethod = "POST"
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = Data(#"{"device_id":"d1","product_id":\#(product),"end_time":"2099-01-01T00:00:00Z"}"#.utf8)
            let (_, response) = try await URLSession.shared.data(for: request)
            #expect((response as! HTTPURLResponse).statusCode == (product == 1 ? 202 : 503))
        }
        let text = metrics.render()
        #expect(text.contains(#"gatehouse_http_responses_total{code="202"} 1"#))
        #expect(text.contains(#"gatehouse_http_responses_total{code="503"} 1"#))
        #expect(!text.contains(#"gatehouse_http_responses_total{code="200"}"#))
    }

    @Test(arguments: StoreKind.allCases)
    func noKeyInResponsesLogsOrRows(kind: StoreKind) async throws {
        let stack = try await APIStack.start(kind)
        defer { Task { await stack.stop() } }
        var replies: [String] = []
        replies.append(try await stack.call("POST", "/device_keys", token: stack.admin,
            body: #"{"device_id":"k1","key":"\#(key2)"}"#).text)
        try await stack.drainOutbox()
        replies.append(try await stack.call("POST", "/devices/k1/key", token: stack.admin, body: #"{"key":"\#(key1)"}"#).text)
        // A key that is almost right must not be echoed in the error either.
        replies.append(try await stack.call("POST", "/device_keys", token: stack.admin,
            body: #"{"device_id":"k2","key":"\#(key2.dropLast())Z"}"#).text)
        try await stack.drainOutbox()
        for path in ["/devices/k1", "/devices/k1/key", "/devices", "/openapi.json"] {
            replies.append(try await stack.call("GET", path, token: stack.reader).text)
        }
        let rows = try await stack.handle.database.read { connection in
            var all: [String] = []
            for table in ["requests", "outbox", "device_keys", "audit_log", "emms", "devices"] {
                for row in try connection.query("SELECT * FROM \(table)") { all.append(String(describing: row)) }
            }
            return all
        }
        let payloads = try await stack.handle.database.read { connection in
            try connection.query("SELECT payload FROM outbox").map { try $0.blob("payload") }
                + connection.query("SELECT wrapped_key AS payload FROM device_keys").map { try $0.blob("payload") }
        }
        let keyBytes = [Fixtures.hex(key1), Fixtures.hex(key2)]
        for secret in [key1, key2, key1.uppercased(), key2.uppercased(), String(key2.prefix(24))] {
            for text in replies + stack.logs.lines + rows {
                #expect(!text.lowercased().contains(secret.lowercased()), "key material in: \(text.prefix(200))")
            }
        }
        for payload in payloads {
            for bytes in keyBytes {
                #expect(!payload.windows(ofCount: 8).contains { Array($0) == Array(bytes.prefix(8)) })
            }
        }
        // The rotation built a key-update EMM and the new key is version 2.
        let status = try await stack.call("GET", "/devices/k1/key", token: stack.reader)
        #expect(status.json["key_version"] == .number(2))
        #expect(status.string("kcv") == "C6A13B")
        #expect(status.json["key_bits"] == .number(128))
    }
}

extension Array where Element == UInt8 {
    func windows(ofCount count: Int) -> [ArraySlice<UInt8>] {
        guard self.count >= count else { return [] }
        return (0...(self.count - count)).map { self[$0..<($0 + count)] }
    }
}
