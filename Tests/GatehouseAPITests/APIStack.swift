import Foundation
import GatehouseAPI
import GatehouseBus
import GatehouseCLI
import GatehouseCore
import GatehouseCrypto
import GatehouseDomain
import GatehouseHTTP
import GatehouseStore
import GatehouseTestSupport
import GatehouseWorker

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A live API on 127.0.0.1 (ephemeral port) over a fresh store, with three tokens and
/// the real worker applier to drain the outbox on demand.
final class APIStack: Sendable {
    let handle: TestDatabases.Handle
    let server: HTTPServer
    let baseURL: String
    let admin: String
    let reader: String
    let writer: String
    let kek: KeyEncryptionKey
    let logs: MemorySink
    let applier: CommandApplier

    /// - Parameter embeddedBus: wire the API as `gatehouse api` does on the embedded bus
    ///   (commands appended to the bus in the request's transaction); default: outbox only.
    static func start(
        _ kind: StoreKind, configuration: APIConfiguration = APIConfiguration(), embeddedBus: Bool = false
    ) async throws -> APIStack {
        let handle = try await TestDatabases.make(kind)
        let logs = MemorySink()
        let logger = Logger(label: "test", minimumLevel: .debug, sink: logs)
        let publisher =
            embeddedBus
            ? try await APIBusWiring.inTransactionPublisher(database: handle.database, bus: BusSettings(), logger: logger)
            : nil
        let kek = try KeyEncryptionKey(key: try SymmetricKey.random(size: .bits256))
        let tokens = APITokens(database: handle.database)
        let admin = try await tokens.create(name: "admin", scopes: [.read, .write, .keys], now: 0)
        let reader = try await tokens.create(name: "reader", scopes: [.read], now: 0)
        let writer = try await tokens.create(name: "sms", scopes: [.read, .write], now: 0)
        let service = APIService(
            database: handle.database, kek: kek, configuration: configuration, publisher: publisher,
            metrics: MetricsRegistry(), logger: logger)
        var http = HTTPServerConfiguration(address: HTTPServerAddress(host: "127.0.0.1", port: 0))
        http.threadCount = 4
        let server = HTTPServer(
            configuration: http, logger: logger,
            handler: service.makeRouter(authenticator: try await StoredTokenAuthenticator(tokens: tokens)).handler)
        try server.start()
        let port = server.boundAddress!.port
        let applier = CommandApplier(database: handle.database, kek: kek.key, logger: logger)
        return APIStack(
            handle: handle, server: server, baseURL: "http://127.0.0.1:\(port)", admin: admin, reader: reader,
            writer: writer, kek: kek, logs: logs, applier: applier)
    }

    private init(handle: TestDatabases.Handle, server: HTTPServer, baseURL: String, admin: String, reader: String,
        writer: String, kek: KeyEncryptionKey, logs: MemorySink, applier: CommandApplier)
    {
        self.handle = handle
        self.server = server
        self.baseURL = baseURL
        self.admin = admin
        self.reader = reader
        self.writer = writer
        self.kek = kek
        self.logs = logs
        self.applier = applier
    }

    func stop() async {
        server.shutdown()
        await handle.close()
    }

    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
        var json: [String: JSONValue] { (try? JSONValue.parseObject(body)) ?? [:] }
        func string(_ key: String) -> String? {
            if case .string(let s)? = json[key] { return s }
            return nil
        }
        var errorField: String? {
            if case .object(let error)? = json["error"], case .string(let field)? = error["field"] { return field }
            return nil
        }
    }

    func call(_ method: String, _ path: String, token: String?, body: String? = nil,
        headers: [String: String] = [:]) async throws -> Reply
    {
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        if let body {
            request.httpBody = Data(body.utf8)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields[String(describing: name).lowercased()] = String(describing: value) }
        return Reply(status: http.statusCode, headers: fields, body: Array(data))
    }

    /// Applies every unpublished outbox command with the real applier, in order.
    @discardableResult
    func drainOutbox() async throws -> [ApplyOutcome] {
        let rows = try await handle.database.read { connection in
            try connection.query("SELECT id, payload FROM outbox WHERE published_at IS NULL ORDER BY id")
                .map { (try $0.int64("id"), try $0.blob("payload")) }
        }
        var outcomes: [ApplyOutcome] = []
        for (id, payload) in rows {
            outcomes.append(try await applier.apply(try Command.decode(payload)))
            try await handle.database.withConnection { connection in
                try connection.execute("UPDATE outbox SET published_at = 1 WHERE id = ?", .int64(id))
            }
        }
        return outcomes
    }

    func count(_ table: String) async throws -> Int {
        try await handle.database.read { try $0.queryFirst("SELECT COUNT(*) AS n FROM \(table)")?.int("n") ?? 0 }
    }
}
