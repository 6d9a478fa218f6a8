import Foundation
import GatehouseBus
import GatehouseCore
import GatehouseStore
import Testing

@Suite
struct BusConfigurationTests {
    @Test
    func parsesTheBusURL() throws {
        #expect(try BusConfiguration(url: "embedded") == .embedded)
        #expect(try BusConfiguration(url: "") == .embedded)
        #expect(try BusConfiguration(url: "kafka://k1:9092") == .kafka(brokers: "k1:9092"))
        #expect(try BusConfiguration(url: "kafka://k1:9092, k2:9093/") == .kafka(brokers: "k1:9092,k2:9093"))
        for bad in ["kafka://", "kafka://k1", "kafka://k1:0", "kafka://user:pw@k1:9092", "amqp://x:1", "kafka://k1:x"] {
            #expect(throws: GatehouseError.self, "\(bad)") { try BusConfiguration(url: bad) }
        }
    }

    @Test
    func settingsHaveDefaultsAndNameTheBadSetting() throws {
        let defaults = try BusSettings(ConfigSource(environment: [:]))
        #expect(defaults.configuration == .embedded)
        #expect(defaults.commandsTopic == "gatehouse.commands")
        #expect(defaults.deadLetterTopic == "gatehouse.commands.dlq")
        #expect(defaults.consumerGroup == "gatehouse-worker")

        let custom = try BusSettings(
            ConfigSource(environment: [
                "GATEHOUSE_BUS_URL": "kafka://127.0.0.1:9092", "GATEHOUSE_BUS_COMMANDS_TOPIC": "cmds",
                "GATEHOUSE_BUS_DLQ_TOPIC": "cmds.dlq", "GATEHOUSE_BUS_GROUP": "w",
            ]))
        #expect(custom.configuration == .kafka(brokers: "127.0.0.1:9092"))
        #expect(custom.commandsTopic == "cmds" && custom.deadLetterTopic == "cmds.dlq" && custom.consumerGroup == "w")

        let error = try #require(throws: GatehouseError.self) {
            try BusSettings(ConfigSource(environment: ["GATEHOUSE_BUS_COMMANDS_TOPIC": "bad topic!"]))
        }
        #expect(error.code == .configuration && error.message.contains("GATEHOUSE_BUS_COMMANDS_TOPIC"))
    }

    @Test
    func relayRepublishesOnKafkaByDefaultAndOnTheEmbeddedBusOnlyWhenAsked() throws {
        let kafka = try BusSettings(ConfigSource(environment: ["GATEHOUSE_BUS_URL": "kafka://127.0.0.1:9092"]))
        let embedded = try BusSettings(ConfigSource(environment: [:]))
        let unset = ConfigSource(environment: [:])
        #expect(try OutboxRelay.Options(unset, bus: kafka).republishAfter == .seconds(60))
        #expect(try OutboxRelay.Options(unset, bus: embedded).republishAfter == nil)
        let asked = ConfigSource(environment: ["GATEHOUSE_RELAY_REPUBLISH_SECONDS": "5"])
        #expect(try OutboxRelay.Options(asked, bus: embedded).republishAfter == .seconds(5))
        #expect(try OutboxRelay.Options(asked, bus: kafka).republishAfter == .seconds(5))
        let never = ConfigSource(environment: ["GATEHOUSE_RELAY_REPUBLISH_SECONDS": "0"])
        #expect(try OutboxRelay.Options(never, bus: kafka).republishAfter == nil)
    }

    @Test
    func deadLetterEnvelopeRoundTrips() throws {
        let record = BusRecord(topic: "t", partition: 2, offset: 41, key: "stb-1", value: [1, 2, 3])
        let envelope = try DeadLetter.decode(
            try DeadLetter.envelope(for: record, reason: String(repeating: "x", count: 5000)))
        #expect(envelope.version == 1 && envelope.key == "stb-1" && envelope.offset == 41 && envelope.partition == 2)
        #expect(envelope.reason.count == DeadLetter.maximumReasonLength)
        #expect(try envelope.originalValue() == [1, 2, 3])
        #expect(throws: GatehouseError.self) { try DeadLetter.decode([0x7B]) }
    }
}

@Suite
struct EmbeddedBusTests {
    @Test(.timeLimit(.minutes(1)))
    func resumesAfterARestartOfTheDatabase() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-bus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bus.sqlite").path
        let logger = BusTestEnvironment.logger()

        var db: any SQLDatabase = try await SQLiteDatabase.open(.init(path: path), logger: logger)
        try await Migrator(logger: logger).migrate(db)
        let producer = EmbeddedBusProducer(database: db, logger: logger)
        for index in 0..<4 { try await producer.publish(topic: "cmd", key: "k", value: [UInt8(index)]) }
        let consumer = EmbeddedBusConsumer(database: db, group: "g", topics: ["cmd"], logger: logger)
        let first = try await consumer.poll(maxRecords: 2, timeout: .seconds(1))
        #expect(first.map(\.value) == [[0], [1]])
        try await consumer.commit(first[1])
        await db.close()

        db = try await SQLiteDatabase.open(.init(path: path), logger: logger)
        let reopened = EmbeddedBusConsumer(database: db, group: "g", topics: ["cmd"], logger: logger)
        let rest = try await reopened.poll(maxRecords: 10, timeout: .seconds(1))
        #expect(rest.map(\.value) == [[2], [3]])
        #expect(rest.map(\.offset) == [2, 3])
        await db.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func retentionDeletesWhatEveryGroupCommitted() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-bus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let logger = BusTestEnvironment.logger()
        let db = try await SQLiteDatabase.open(
            .init(path: dir.appendingPathComponent("bus.sqlite").path), logger: logger)
        try await Migrator(logger: logger).migrate(db)
        let producer = EmbeddedBusProducer(database: db, logger: logger)
        for index in 0..<10 { try await producer.publish(topic: "cmd", key: "k", value: [UInt8(index)]) }
        var options = EmbeddedBusConsumer.Options()
        options.retentionInterval = .zero
        options.retentionMinimumAge = .zero
        let a = EmbeddedBusConsumer(database: db, group: "a", topics: ["cmd"], options: options, logger: logger)
        let b = EmbeddedBusConsumer(database: db, group: "b", topics: ["cmd"], options: options, logger: logger)
        let seenA = try await a.poll(maxRecords: 10, timeout: .seconds(1))
        let seenB = try await b.poll(maxRecords: 10, timeout: .seconds(1))
        try await b.commit(seenB[3])  // the slower group holds messages 4…9
        try await a.commit(seenA[7])
        let left = try await db.read { c in
            try c.query("SELECT message_offset FROM bus_messages WHERE topic = 'cmd' ORDER BY message_offset")
                .map { try $0.int64("message_offset") }
        }
        #expect(left == [4, 5, 6, 7, 8, 9])

        // The default keeps an hour of history even when every group is past it.
        let keeper = EmbeddedBusConsumer(database: db, group: "a", topics: ["cmd"], logger: logger)
        try await keeper.commit(BusRecord(topic: "cmd", partition: 0, offset: 9, key: "k", value: []))
        let kept = try await db.read { c in try c.queryFirst("SELECT COUNT(*) AS n FROM bus_messages")!.int("n") }
        #expect(kept == 6)
        await db.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func offsetsCommitInsideTheCallersTransactionAndLagCountsWhatIsLeft() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-bus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let logger = BusTestEnvironment.logger()
        let db = try await SQLiteDatabase.open(.init(path: dir.appendingPathComponent("bus.sqlite").path), logger: logger)
        try await Migrator(logger: logger).migrate(db)
        let producer = EmbeddedBusProducer(database: db, logger: logger)
        let lag = { @Sendable in try await db.read { try EmbeddedBusProducer.lag($0, group: "g", topic: "cmd") } }
        #expect(try await lag() == 0)  // a topic nobody published to
        // Appended in a caller's transaction, as the API does: on the bus only once it commits.
        try await producer.prepare([BusMessage(topic: "cmd", key: "*", value: [])])
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await db.transaction { connection in
                try producer.append([BusMessage(topic: "cmd", key: "k", value: [9])], in: connection, at: 1)
                throw Abort()
            }
        }
        #expect(try await lag() == 0)
        try await db.transaction { connection in
            try producer.append(
                (0..<5).map { BusMessage(topic: "cmd", key: "k", value: [UInt8($0)]) }, in: connection, at: 1)
        }
        #expect(try await lag() == 5)

        let consumer = EmbeddedBusConsumer(database: db, group: "g", topics: ["cmd"], logger: logger)
        #expect(consumer.stores(in: db))
        let records = try await consumer.poll(maxRecords: 3, timeout: .seconds(1))
        #expect(records.map(\.offset) == [0, 1, 2])
        // A transaction that rolls back takes the offsets with it...
        await #expect(throws: Abort.self) {
            try await db.transaction { connection in
                try consumer.commit(records, in: connection)
                throw Abort()
            }
        }
        #expect(try await lag() == 5)
        // ...one that commits stores the highest, whatever the order given.
        try await db.transaction { connection in try consumer.commit(records.reversed(), in: connection) }
        try await consumer.didCommit()
        #expect(try await lag() == 2)
        // A new consumer of the group resumes after them.
        let next = EmbeddedBusConsumer(database: db, group: "g", topics: ["cmd"], logger: logger)
        #expect(try await next.poll(maxRecords: 10, timeout: .seconds(1)).map(\.value) == [[3], [4]])
        await consumer.close()
        await #expect(throws: GatehouseError.self) {
            try await db.transaction { connection in try consumer.commit(records, in: connection) }
        }
        await db.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func aWaitingPollSeesAPublishAndTimesOutWhenNothingComes() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-bus-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let logger = BusTestEnvironment.logger()
        let db = try await SQLiteDatabase.open(
            .init(path: dir.appendingPathComponent("bus.sqlite").path), logger: logger)
        try await Migrator(logger: logger).migrate(db)
        let consumer = EmbeddedBusConsumer(database: db, group: "g", topics: ["cmd"], logger: logger)
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try await consumer.poll(maxRecords: 1, timeout: .milliseconds(200)).isEmpty)
        #expect(started.duration(to: clock.now) >= .milliseconds(200))

        let producer = EmbeddedBusProducer(database: db, logger: logger)
        async let polled = consumer.poll(maxRecords: 5, timeout: .seconds(5))
        try await Task.sleep(for: .milliseconds(50))
        try await producer.publish(topic: "cmd", key: "k", value: [42])
        #expect(try await polled.map(\.value) == [[42]])
        await db.close()
    }
}
