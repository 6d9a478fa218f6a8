import Foundation
import GatehouseCore
import GatehouseStore

/// One message as a consumer receives it.
///
/// `partition` and `offset` locate it in its topic (the embedded bus has one partition,
/// 0, per topic); `commit` takes the record back to mark it and everything before it in
/// its partition as done.
public struct BusRecord: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The partition key (a device id, or `*`): records with one key keep their order.
    public var key: String
    public var value: [UInt8]

    public init(topic: String, partition: Int32, offset: Int64, key: String, value: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
    }
}

/// One message to publish, for `BusProducer.publish(batch:)`.
public struct BusMessage: Sendable, Equatable {
    public var topic: String
    public var key: String
    public var value: [UInt8]

    public init(topic: String, key: String, value: [UInt8]) {
        self.topic = topic
        self.key = key
        self.value = value
    }
}

/// Publishes messages durably.
public protocol BusProducer: Sendable {
    /// Returns only when the message is durably stored by the bus (embedded: committed;
    /// Kafka: its `acks=all` delivery report came back without error).
    /// - Throws: `GatehouseError` (`.unavailable` when the bus could not store it: retry).
    func publish(topic: String, key: String, value: [UInt8]) async throws

    /// Publishes several messages and returns when all are durable. Messages with one
    /// key keep their order. A throw means some may have been stored: callers that retry
    /// publish them again (at-least-once).
    func publish(batch: [BusMessage]) async throws

    /// Waits until everything handed to the producer is stored (or failed).
    func flush() async throws

    /// Flushes (bounded) and releases the connection to the bus. Publishing afterwards throws.
    func close() async
}

extension BusProducer {
    /// One message at a time; producers that can pipeline override this.
    public func publish(batch: [BusMessage]) async throws {
        for message in batch { try await publish(topic: message.topic, key: message.key, value: message.value) }
    }

    public func close() async {}
}

/// Reads messages for one consumer group.
public protocol BusConsumer: Sendable {
    /// Up to `maxRecords` records, waiting at most `timeout` for the first; records of
    /// one key come in publish order. Returns `[]` when nothing arrived in time.
    func poll(maxRecords: Int, timeout: Duration) async throws -> [BusRecord]

    /// Marks `record` (and everything before it in its partition) done; call it AFTER
    /// the database commit, so a crash in between redelivers instead of losing.
    func commit(_ record: BusRecord) async throws

    /// Leaves the group; records handed out but not committed go to the next consumer.
    func close() async
}

/// Which bus to use: `GATEHOUSE_BUS_URL` is `embedded` (default) or
/// `kafka://host:port[,host:port]`.
public enum BusConfiguration: Sendable, Equatable {
    /// A durable queue in the service's own database (`bus_*` tables, schema v2).
    case embedded
    /// An Apache Kafka protocol cluster; `brokers` is librdkafka's `bootstrap.servers`.
    case kafka(brokers: String)

    /// Parses a `GATEHOUSE_BUS_URL` value.
    /// - Throws: `GatehouseError.configuration` naming the setting.
    public init(url: String) throws {
        let trimmed = url.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty || trimmed == "embedded" {
            self = .embedded
            return
        }
        let prefix = "kafka://"
        guard trimmed.lowercased().hasPrefix(prefix) else {
            throw GatehouseError(
                .configuration, "GATEHOUSE_BUS_URL=\(trimmed): expected embedded or kafka://host:port[,host:port]")
        }
        var rest = Substring(trimmed.dropFirst(prefix.count))
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        let brokers = rest.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !brokers.isEmpty,
            brokers.allSatisfy({ broker in
                guard let colon = broker.lastIndex(of: ":"), colon != broker.startIndex,
                    let port = Int(broker[broker.index(after: colon)...]), (1...65535).contains(port)
                else { return false }
                return !broker.contains("/") && !broker.contains("@")
            })
        else {
            throw GatehouseError(
                .configuration, "GATEHOUSE_BUS_URL=\(trimmed): expected kafka://host:port[,host:port] (port 1-65535)")
        }
        self = .kafka(brokers: brokers.joined(separator: ","))
    }
}

/// The bus settings a service needs besides the URL.
public struct BusSettings: Sendable, Equatable {
    public var configuration: BusConfiguration
    /// Commands from the API to the worker. Default `gatehouse.commands`
    /// (`GATEHOUSE_BUS_COMMANDS_TOPIC`).
    public var commandsTopic: String = "gatehouse.commands"
    /// Poison messages the worker gave up on. Default `gatehouse.commands.dlq` (`GATEHOUSE_BUS_DLQ_TOPIC`).
    public var deadLetterTopic: String = "gatehouse.commands.dlq"
    /// The worker's consumer group. Default `gatehouse-worker` (`GATEHOUSE_BUS_GROUP`).
    public var consumerGroup: String = "gatehouse-worker"
    /// Kafka only: partitions for topics Gatehouse creates. Default 12 (`GATEHOUSE_BUS_PARTITIONS`).
    public var kafkaPartitions: Int = 12
    /// Kafka only: replication factor for topics Gatehouse creates; -1 is the broker's
    /// default (`default.replication.factor`). Default -1 (`GATEHOUSE_BUS_REPLICATION`).
    public var kafkaReplicationFactor: Int = -1

    public init(configuration: BusConfiguration = .embedded) { self.configuration = configuration }

    /// Reads `GATEHOUSE_BUS_URL`, `GATEHOUSE_BUS_COMMANDS_TOPIC`, `GATEHOUSE_BUS_DLQ_TOPIC`,
    /// `GATEHOUSE_BUS_GROUP`, `GATEHOUSE_BUS_PARTITIONS`, `GATEHOUSE_BUS_REPLICATION`.
    /// - Throws: `GatehouseError.configuration` naming the setting.
    public init(_ source: ConfigSource) throws {
        self.init(configuration: try BusConfiguration(url: source.string("GATEHOUSE_BUS_URL", default: "embedded")))
        commandsTopic = try Self.topic(source, "GATEHOUSE_BUS_COMMANDS_TOPIC", default: commandsTopic)
        deadLetterTopic = try Self.topic(source, "GATEHOUSE_BUS_DLQ_TOPIC", default: deadLetterTopic)
        consumerGroup = try Self.topic(source, "GATEHOUSE_BUS_GROUP", default: consumerGroup)
        kafkaPartitions = try source.int("GATEHOUSE_BUS_PARTITIONS", default: kafkaPartitions, in: 1...10_000)
        kafkaReplicationFactor = try source.int(
            "GATEHOUSE_BUS_REPLICATION", default: kafkaReplicationFactor, in: -1...100)
        guard commandsTopic != deadLetterTopic else {
            throw GatehouseError(
                .configuration, "GATEHOUSE_BUS_DLQ_TOPIC must differ from GATEHOUSE_BUS_COMMANDS_TOPIC")
        }
    }

    /// Kafka's rule for topic and group names: 1-249 of `[a-zA-Z0-9._-]`.
    static func topic(_ source: ConfigSource, _ key: String, default value: String) throws -> String {
        let name = source.string(key, default: value)
        guard Bus.isValidName(name) else {
            throw GatehouseError(.configuration, "\(key)=\(name): expected 1-249 characters of a-z A-Z 0-9 . _ -")
        }
        return name
    }
}

extension GatehouseError.Code {
    /// The message bus refused or lost a message (Kafka error, closed producer).
    public static let bus = GatehouseError.Code("bus")
}

/// Factories for the configured bus.
public enum Bus {
    /// A producer for `settings.configuration`. For Kafka it first makes sure the commands
    /// and dead-letter topics exist (creating them with the admin API).
    /// - Parameters:
    ///   - database: the service's database; the embedded bus stores messages there
    ///     (migrated to schema v2 or later). Unused for Kafka.
    ///   - kafkaOptions: extra librdkafka properties (tests, TLS/SASL settings).
    public static func makeProducer(
        _ settings: BusSettings, database: any SQLDatabase, logger: Logger,
        kafkaOptions: [String: String] = [:]
    ) async throws -> any BusProducer {
        switch settings.configuration {
        case .embedded:
            return EmbeddedBusProducer(database: database, logger: logger)
        case .kafka(let brokers):
            try await KafkaAdmin.ensureTopics(
                [settings.commandsTopic, settings.deadLetterTopic], partitions: settings.kafkaPartitions,
                replicationFactor: settings.kafkaReplicationFactor, brokers: brokers, options: kafkaOptions,
                logger: logger)
            return try KafkaBusProducer.make(brokers: brokers, options: kafkaOptions, logger: logger)
        }
    }

    /// A consumer of `topics` (default: the commands topic) in `settings.consumerGroup`.
    /// - Important: the embedded bus has one partition per topic, so run one consumer per
    ///   group at a time (two would both receive every record).
    public static func makeConsumer(
        _ settings: BusSettings, database: any SQLDatabase, logger: Logger, topics: [String]? = nil,
        kafkaOptions: [String: String] = [:]
    ) async throws -> any BusConsumer {
        let topics = topics ?? [settings.commandsTopic]
        switch settings.configuration {
        case .embedded:
            return EmbeddedBusConsumer(
                database: database, group: settings.consumerGroup, topics: topics, logger: logger)
        case .kafka(let brokers):
            try await KafkaAdmin.ensureTopics(
                topics, partitions: settings.kafkaPartitions, replicationFactor: settings.kafkaReplicationFactor,
                brokers: brokers, options: kafkaOptions, logger: logger)
            return try KafkaBusConsumer.make(
                brokers: brokers, group: settings.consumerGroup, topics: topics, options: kafkaOptions,
                logger: logger)
        }
    }

    /// Kafka only: creates the commands and dead-letter topics when they are missing
    /// (for an operator tool or a start-up check; the factories call it too). The embedded
    /// bus needs nothing: its tables come with the schema migrations.
    /// - Throws: `GatehouseError` when the cluster does not answer in 15 s or refuses.
    public static func ensureTopics(_ settings: BusSettings, logger: Logger, kafkaOptions: [String: String] = [:])
        async throws
    {
        guard case .kafka(let brokers) = settings.configuration else { return }
        try await KafkaAdmin.ensureTopics(
            [settings.commandsTopic, settings.deadLetterTopic], partitions: settings.kafkaPartitions,
            replicationFactor: settings.kafkaReplicationFactor, brokers: brokers, options: kafkaOptions,
            logger: logger)
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 249
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2E
                    || c == 0x5F || c == 0x2D
            }
    }
}
