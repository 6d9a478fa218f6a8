import Foundation
import GatehouseAPI
import GatehouseBus
import GatehouseCore
import GatehouseDomain
import GatehouseStore
import GatehouseWorker

/// The outbox relay as a service.
struct RelayService: GatehouseService {
    let name = "relay"
    let relay: OutboxRelay
    func run() async throws { try await relay.run() }
}

extension Bootstrap {
    func busSettings() throws -> BusSettings { try BusSettings(settings.source) }

    /// `GATEHOUSE_KAFKA_OPTIONS`: extra librdkafka properties as `key=value,key=value`
    /// (TLS, SASL, `session.timeout.ms`, …), given to producers and consumers alike.
    func kafkaOptions() throws -> [String: String] {
        guard let text = settings.source.string("GATEHOUSE_KAFKA_OPTIONS") else { return [:] }
        var options: [String: String] = [:]
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty else {
                throw GatehouseError(.configuration, "GATEHOUSE_KAFKA_OPTIONS: expected key=value pairs separated by commas")
            }
            options[parts[0]] = parts[1]
        }
        return options
    }

    func busProducer(_ bus: BusSettings) async throws -> any BusProducer {
        try await Bus.makeProducer(bus, database: database, logger: logger.with(label: "bus"), kafkaOptions: try kafkaOptions())
    }

    func inTransactionPublisher(_ bus: BusSettings) async throws -> InTransactionPublisher? {
        try await APIBusWiring.inTransactionPublisher(database: database, bus: bus, logger: logger.with(label: "bus"))
    }

    /// The outbox relay: moves accepted requests from the outbox onto the bus.
    func relayService(bus: BusSettings, producer: any BusProducer) throws -> RelayService {
        RelayService(relay: OutboxRelay(
            database: database, producer: producer, topic: bus.commandsTopic, logger: logger.with(label: "relay"),
            options: try OutboxRelay.Options(settings.source, bus: bus), metrics: metrics))
    }

    /// The worker: consumes commands, applies them, builds EMMs.
    func workerService(bus: BusSettings, producer: any BusProducer, kek: KeyEncryptionKey) async throws -> WorkerService {
        let consumer = try await Bus.makeConsumer(
            bus, database: database, logger: logger.with(label: "bus"), kafkaOptions: try kafkaOptions())
        let applier = CommandApplier(database: database, kek: kek.key, logger: logger.with(label: "worker"))
        return WorkerService(
            applier: applier, consumer: consumer, producer: producer, deadLetterTopic: bus.deadLetterTopic,
            options: try WorkerService.Options(settings.source), metrics: metrics, logger: logger.with(label: "worker"))
    }
}

/// How the API hands commands to the bus (`api` and `serve` use it, and so do the tests).
public enum APIBusWiring {
    /// On the embedded bus the API appends each command to the bus in its request's own
    /// transaction (the bus tables are in the same database), and its backlog is what the
    /// worker's group has not consumed; on Kafka it returns nil and the relay moves commands.
    public static func inTransactionPublisher(database: any SQLDatabase, bus: BusSettings, logger: Logger)
        async throws -> InTransactionPublisher?
    {
        guard bus.configuration == .embedded else { return nil }
        let producer = EmbeddedBusProducer(database: database, logger: logger)
        let topic = bus.commandsTopic
        let group = bus.consumerGroup
        // Makes sure of the topic's offset row now, outside any request's transaction.
        try await producer.prepare([BusMessage(topic: topic, key: "*", value: [])])
        return InTransactionPublisher(
            append: { connection, key, payload, at in
                try producer.append([BusMessage(topic: topic, key: key, value: payload)], in: connection, at: at)
            },
            backlog: { connection in try EmbeddedBusProducer.lag(connection, group: group, topic: topic) })
    }
}

/// `gatehouse worker`: the outbox relay and the command worker.
public enum WorkerCommand: Subcommand {
    public static let name = "worker"
    public static let summary = "run the outbox relay and the command worker"
    public static let usage = """
        usage: gatehouse worker [--config FILE] [--no-relay]
          --no-relay   consume only (when the relay runs elsewhere, e.g. beside the API)
        settings: GATEHOUSE_DATABASE_URL, GATEHOUSE_BUS_URL, GATEHOUSE_KEK_FILE, GATEHOUSE_BUS_* (docs/configuration.md)
        """

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        let noRelay = rest.contains("--no-relay")
        guard rest.allSatisfy({ $0 == "--no-relay" }) else { throw UsageError("unknown option \(rest[0])") }
        let boot = try await Bootstrap.make(settings, context: context)
        let bus = try boot.busSettings()
        let producer = try await boot.busProducer(bus)
        var services: [any GatehouseService] = [
            try await boot.workerService(bus: bus, producer: producer, kek: try boot.kek(createIfMissing: false))
        ]
        if !noRelay { services.append(try boot.relayService(bus: bus, producer: producer)) }
        try await ServiceRunner(services: services, logger: boot.logger).run {
            await producer.close()
            await boot.database.close()
        }
        return 0
    }
}

/// `gatehouse serve`: everything in one process on the embedded defaults.
public enum ServeCommand: Subcommand {
    public static let name = "serve"
    public static let summary = "run API, worker, playout and monitor in one process (embedded defaults)"
    public static let usage = """
        usage: gatehouse serve [--config FILE]
        Zero set-up: a SQLite store and the embedded bus in GATEHOUSE_DATA_DIR (default ./gatehouse-data),
        a KEK made there on first start, and an admin API token written to <data dir>/admin.token on first start.
        """

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        guard rest.isEmpty else { throw UsageError("unknown option \(rest[0])") }
        let boot = try await Bootstrap.make(settings, context: context)
        let kek = try boot.kek(createIfMissing: true)
        try await makeFirstToken(boot, context: context)
        let bus = try boot.busSettings()
        let producer = try await boot.busProducer(bus)
        let monitor = try boot.monitorService(kek: kek, producer: producer)
        let services: [any GatehouseService] = [
            try await boot.apiServer(kek: kek, extraMetrics: [monitor.metrics]),
            try boot.relayService(bus: bus, producer: producer),
            try await boot.workerService(bus: bus, producer: producer, kek: kek),
            try boot.playoutService(),
            monitor,
            OnAirRecorder(monitor: monitor, database: boot.database, logger: boot.logger),
        ]
        try await ServiceRunner(services: services, logger: boot.logger).run {
            await producer.close()
            await boot.database.close()
        }
        return 0
    }

    /// On first start (no tokens at all), makes an `admin` token with every scope and
    /// writes it to `<data dir>/admin.token` (mode 0600) so the demo and a newcomer can call
    /// the API at once. Later starts leave tokens alone.
    static func makeFirstToken(_ boot: Bootstrap, context: CommandContext) async throws {
        let tokens = APITokens(database: boot.database)
        guard try await tokens.count() == 0 else { return }
        let path = boot.settings.dataDirectory + "/admin.token"
        // Checked before the token exists: a token nobody can read would block the next start.
        guard FileManager.default.isWritableFile(atPath: boot.settings.dataDirectory) else {
            throw GatehouseError(.io, "cannot write \(path): check that the data directory is writable")
        }
        let token = try await tokens.create(name: "admin", scopes: [.read, .write, .keys], now: ISO8601.nowMillis())
        guard FileManager.default.createFile(
            atPath: path, contents: Data((token + "\n").utf8), attributes: [.posixPermissions: 0o600])
        else {
            throw GatehouseError(.io, "cannot write \(path); create a token with `gatehouse token create`")
        }
        boot.logger.notice("api.admin_token_created", ["token.file": path])
    }
}
