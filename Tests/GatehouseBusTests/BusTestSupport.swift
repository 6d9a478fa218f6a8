import Foundation
import GatehouseBus
import GatehouseCore
import GatehouseStore
import GatehouseTestSupport
import Synchronization
import Testing

/// Where a contract case runs: the embedded bus on SQLite or MariaDB, or a real
/// Kafka-protocol broker (tansu, started by scripts/kafka.sh).
enum BusBackend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case mariadb
    case kafka

    var testDescription: String { rawValue }
}

enum BusTestEnvironment {
    static let mysqlVariable = "GATEHOUSE_TEST_MYSQL_URL"
    static let kafkaVariable = "GATEHOUSE_TEST_KAFKA_BROKERS"

    static let howToStartMariaDB = """
        \(mysqlVariable) is not set, so the bus cases on MariaDB cannot run (they fail rather than skip: \
        CI always provides a server). Start a private server and export its URL:
            scripts/mariadb.sh start /tmp/gh-mariadb 33306
            export \(mysqlVariable)=mysql://gatehouse:gatehouse@127.0.0.1:33306/gatehouse_test
        """

    static let howToStartKafka = """
        \(kafkaVariable) is not set, so the bus cases on Kafka cannot run (they fail rather than skip: \
        CI always starts a broker). Start tansu and export what it prints:
            scripts/kafka.sh start /tmp/gh-kafka 39092
            eval "$(scripts/kafka.sh env /tmp/gh-kafka)"   # LD_LIBRARY_PATH (librdkafka 2.16) and \(kafkaVariable)
        """

    static func value(_ name: String, howTo: String, sourceLocation: SourceLocation) throws -> String {
        guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else {
            Issue.record(Comment(rawValue: howTo), sourceLocation: sourceLocation)
            throw GatehouseError(.configuration, "\(name) is not set")
        }
        return value
    }

    /// Consumer settings that make a group join in about a second on tansu (its join
    /// waits in proportion to the session timeout).
    static let kafkaOptions: [String: String] = ["session.timeout.ms": "3000", "heartbeat.interval.ms": "500"]

    static func logger() -> Logger { Logger(label: "bus-test", minimumLevel: .warning) }
}

/// One case's bus: unique topic and group names (the broker is shared between cases), a
/// private migrated database, and everything made here closed at the end.
final class BusHarness: Sendable {
    let backend: BusBackend
    let database: any SQLDatabase
    let settings: BusSettings
    /// Unique per case: prefix keys with it to tell this case's records apart.
    let prefix: String
    let logger: Logger
    private let producers = Mutex<[any BusProducer]>([])
    private let consumers = Mutex<[any BusConsumer]>([])

    init(backend: BusBackend, database: any SQLDatabase, settings: BusSettings, prefix: String, logger: Logger) {
        self.backend = backend
        self.database = database
        self.settings = settings
        self.prefix = prefix
        self.logger = logger
    }

    func makeProducer() async throws -> any BusProducer {
        let producer = try await Bus.makeProducer(settings, database: database, logger: logger)
        producers.withLock { $0.append(producer) }
        return producer
    }

    func makeConsumer(group: String? = nil, topics: [String]? = nil) async throws -> any BusConsumer {
        var settings = self.settings
        if let group { settings.consumerGroup = "\(prefix).\(group)" }
        let consumer = try await Bus.makeConsumer(
            settings, database: database, logger: logger, topics: topics,
            kafkaOptions: BusTestEnvironment.kafkaOptions)
        consumers.withLock { $0.append(consumer) }
        return consumer
    }

    func closeAll() async {
        for consumer in consumers.withLock({ $0 }) { await consumer.close() }
        for producer in producers.withLock({ $0 }) { await producer.close() }
    }
}

/// Runs `body` against `backend` and cleans up after it.
func withBus(
    _ backend: BusBackend, sourceLocation: SourceLocation = #_sourceLocation, _ body: (BusHarness) async throws -> Void
) async throws {
    let logger = BusTestEnvironment.logger()
    let prefix = "t\(UUID().uuidString.prefix(8).lowercased())"
    var settings = BusSettings(configuration: .embedded)
    settings.commandsTopic = "\(prefix).commands"
    settings.deadLetterTopic = "\(prefix).dlq"
    settings.consumerGroup = "\(prefix).worker"
    settings.kafkaPartitions = 6
    settings.kafkaReplicationFactor = 1

    switch backend {
    case .mariadb:
        // Fails (not skips) with instructions when the server is missing.
        _ = try BusTestEnvironment.value(
            BusTestEnvironment.mysqlVariable, howTo: BusTestEnvironment.howToStartMariaDB,
            sourceLocation: sourceLocation)
    case .kafka:
        let brokers = try BusTestEnvironment.value(
            BusTestEnvironment.kafkaVariable, howTo: BusTestEnvironment.howToStartKafka,
            sourceLocation: sourceLocation)
        let version = KafkaBusProducer.librdkafkaVersion
        if version.hasPrefix("2.0.") || version.hasPrefix("1.") {
            Issue.record(
                Comment(
                    rawValue: "librdkafka \(version) is loaded, which cannot talk to tansu: put "
                        + "librdkafka 2.16 first on LD_LIBRARY_PATH (eval \"$(scripts/kafka.sh env DIR)\")"),
                sourceLocation: sourceLocation)
        }
        settings.configuration = .kafka(brokers: brokers)
    case .sqlite:
        break
    }
    // A private, migrated database per case (the Kafka cases keep their outbox in SQLite).
    let handle = try await TestDatabases.make(backend == .mariadb ? .mariadb : .sqlite, logger: logger)
    let database = handle.database
    let harness = BusHarness(backend: backend, database: database, settings: settings, prefix: prefix, logger: logger)
    do {
        try await body(harness)
    } catch {
        await harness.closeAll()
        await handle.close()
        throw error
    }
    await harness.closeAll()
    await handle.close()
}

/// Polls until `count` records arrived or `timeout` passed; returns what arrived.
func drain(
    _ consumer: any BusConsumer, count: Int, timeout: Duration = .seconds(30),
    where keep: (BusRecord) -> Bool = { _ in true }
) async throws -> [BusRecord] {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    var records: [BusRecord] = []
    while records.count < count {
        let now = clock.now
        guard now < deadline else { break }
        let batch = try await consumer.poll(
            maxRecords: 500, timeout: min(.milliseconds(500), now.duration(to: deadline)))
        records.append(contentsOf: batch.filter(keep))
    }
    return records
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

/// A producer that publishes and then fails, as if the process died before the relay
/// could mark the rows published.
struct CrashAfterPublishProducer: BusProducer {
    let inner: any BusProducer
    struct Crash: Error {}

    func publish(topic: String, key: String, value: [UInt8]) async throws {
        try await inner.publish(topic: topic, key: key, value: value)
        throw Crash()
    }

    func publish(batch: [BusMessage]) async throws {
        try await inner.publish(batch: batch)
        throw Crash()
    }

    func flush() async throws { try await inner.flush() }
}
