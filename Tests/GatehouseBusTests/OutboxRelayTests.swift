import Foundation
import GatehouseBus
import GatehouseCore
import GatehouseStore
import Testing

/// Writes what the API writes: a request and its outbox row.
func insertRequest(
    _ db: any SQLDatabase, id: String, key: String, payload: [UInt8], status: String = "accepted",
    publishedAt: Int64? = nil
) async throws {
    try await db.transaction { c in
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try c.execute(
            "INSERT INTO requests (request_id, kind, body_hash, status, accepted_at) VALUES (?, 'add_entitlement', 'h', ?, ?)",
            .text(id), .text(status), .int64(now))
        try c.execute(
            "INSERT INTO outbox (request_id, partition_key, payload, created_at, published_at) VALUES (?, ?, ?, ?, ?)",
            .text(id), .text(key), .blob(payload), .int64(now), SQLValue(publishedAt))
    }
}

func unpublished(_ db: any SQLDatabase, prefix: String) async throws -> Int {
    try await db.read { c in
        try c.queryFirst(
            "SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL AND request_id LIKE ?", .text("\(prefix)%"))!
            .int("n")
    }
}

/// The relay against every backend (the Kafka cases keep their outbox in SQLite). Keys
/// carry the case's prefix, so a shared broker's other records are told apart.
@Suite
struct OutboxRelayTests {
    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func publishesExactlyTheUnpublishedRowsInOrderAndMarksThem(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let p = bus.prefix
            for index in 0..<3 {
                try await insertRequest(
                    bus.database, id: "\(p)-old\(index)", key: "\(p)-stb-0", payload: bytes("old\(index)"),
                    publishedAt: 1_700_000_000_000)
            }
            for index in 0..<20 {
                try await insertRequest(
                    bus.database, id: "\(p)-r\(index)", key: "\(p)-stb-\(index % 3)", payload: bytes("r\(index)"))
            }
            let producer = try await bus.makeProducer()
            var options = OutboxRelay.Options()
            options.batchSize = 8
            let relay = OutboxRelay(
                database: bus.database, producer: producer, topic: bus.settings.commandsTopic, logger: bus.logger,
                options: options)
            var total = 0
            var rounds = 0
            while rounds < 50 {
                let count = try await relay.runOnce()
                if count == 0 { break }
                total += count
                rounds += 1
            }
            #expect(total == 20)
            #expect(try await unpublished(bus.database, prefix: p) == 0)

            let consumer = try await bus.makeConsumer()
            let mine = try await drain(consumer, count: 20) { $0.key.hasPrefix(p) }
            #expect(mine.count == 20)
            #expect(Set(mine.map { text($0.value) }) == Set((0..<20).map { "r\($0)" }))
            for key in 0..<3 {
                let values = mine.filter { $0.key == "\(p)-stb-\(key)" }.map { text($0.value) }
                #expect(values == (0..<20).filter { $0 % 3 == key }.map { "r\($0)" })
            }
            #expect(
                try await consumer.poll(maxRecords: 10, timeout: .milliseconds(300)).filter { $0.key.hasPrefix(p) }
                    .isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func restartAfterACrashPublishesAgain(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let p = bus.prefix
            for index in 0..<6 {
                try await insertRequest(
                    bus.database, id: "\(p)-r\(index)", key: "\(p)-stb", payload: bytes("c\(index)"))
            }
            let producer = try await bus.makeProducer()
            let topic = bus.settings.commandsTopic
            let crashing = OutboxRelay(
                database: bus.database, producer: CrashAfterPublishProducer(inner: producer), topic: topic,
                logger: bus.logger)
            await #expect(throws: CrashAfterPublishProducer.Crash.self) { try await crashing.runOnce() }
            #expect(try await unpublished(bus.database, prefix: p) == 6)

            let restarted = OutboxRelay(database: bus.database, producer: producer, topic: topic, logger: bus.logger)
            var republished = 0
            for _ in 0..<10 {
                let count = try await restarted.runOnce()
                if count == 0 { break }
                republished += count
            }
            #expect(republished == 6)
            #expect(try await unpublished(bus.database, prefix: p) == 0)

            // At-least-once: every command twice, in order each time, none lost.
            let consumer = try await bus.makeConsumer()
            let mine = try await drain(consumer, count: 12) { $0.key.hasPrefix(p) }
            let sequence = (0..<6).map { "c\($0)" }
            #expect(mine.map { text($0.value) } == sequence + sequence)
        }
    }

    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func republishesRequestsStillAcceptedLongAfterPublishing(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let p = bus.prefix
            let longAgo = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
            let recent = Int64(Date().timeIntervalSince1970 * 1000)
            try await insertRequest(
                bus.database, id: "\(p)-stuck", key: "\(p)-a", payload: bytes("stuck"), publishedAt: longAgo)
            try await insertRequest(
                bus.database, id: "\(p)-done", key: "\(p)-a", payload: bytes("done"), status: "processed",
                publishedAt: longAgo)
            try await insertRequest(
                bus.database, id: "\(p)-fresh", key: "\(p)-a", payload: bytes("fresh"), publishedAt: recent)
            let producer = try await bus.makeProducer()
            var options = OutboxRelay.Options()
            options.republishAfter = .seconds(60)
            let relay = OutboxRelay(
                database: bus.database, producer: producer, topic: bus.settings.commandsTopic, logger: bus.logger,
                options: options)
            let first = try await relay.republishStale()
            #expect(first == 1)
            // Restamped: not published again until another minute has passed.
            #expect(try await relay.republishStale() == 0)

            let consumer = try await bus.makeConsumer()
            let mine = try await drain(consumer, count: 1) { $0.key.hasPrefix(p) }
            #expect(mine.map { text($0.value) } == ["stuck"])
            #expect(
                try await consumer.poll(maxRecords: 10, timeout: .milliseconds(300)).filter { $0.key.hasPrefix(p) }
                    .isEmpty)
        }
    }

    /// On the embedded bus in the relay's own database, appending the bus rows and stamping
    /// the outbox rows are one transaction: a round that fails after appending leaves
    /// nothing on the bus, and the next round moves every row exactly once.
    @Test(.timeLimit(.minutes(2)), arguments: [BusBackend.sqlite, .mariadb])
    func onTheEmbeddedBusARoundMovesAtomicallyAndExactlyOnce(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let p = bus.prefix
            // 150 rows: bus INSERTs of 64, 64, 8, 8 and six of 1.
            for index in 0..<150 {
                try await insertRequest(
                    bus.database, id: "\(p)-r\(index)", key: "\(p)-stb-\(index % 4)", payload: bytes("m\(index)"))
            }
            // Stamping the last row fails, after the round's bus rows were appended.
            let trigger = "\(p)_refuse"
            try await bus.database.withConnection { connection in
                if connection.dialect == .sqlite {
                    try connection.execute(
                        "CREATE TRIGGER \(trigger) BEFORE UPDATE ON outbox WHEN NEW.request_id = '\(p)-r149' "
                            + "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END", [])
                } else {
                    try connection.execute(
                        "CREATE TRIGGER \(trigger) BEFORE UPDATE ON outbox FOR EACH ROW BEGIN "
                            + "IF NEW.request_id = '\(p)-r149' THEN "
                            + "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by the test'; END IF; END", [])
                }
            }
            let producer = try await bus.makeProducer()
            var options = OutboxRelay.Options()
            options.batchSize = 150
            let relay = OutboxRelay(
                database: bus.database, producer: producer, topic: bus.settings.commandsTopic, logger: bus.logger,
                options: options)
            await #expect(throws: (any Error).self) { try await relay.runOnce() }
            #expect(try await unpublished(bus.database, prefix: p) == 150)
            let consumer = try await bus.makeConsumer()
            #expect(
                try await consumer.poll(maxRecords: 200, timeout: .milliseconds(300)).filter { $0.key.hasPrefix(p) }
                    .isEmpty)

            try await bus.database.withConnection { connection in
                try connection.execute("DROP TRIGGER \(trigger)", [])
            }
            #expect(try await relay.runOnce() == 150)
            #expect(try await relay.runOnce() == 0)
            #expect(try await unpublished(bus.database, prefix: p) == 0)
            let mine = try await drain(consumer, count: 150) { $0.key.hasPrefix(p) }
            #expect(mine.map { text($0.value) } == (0..<150).map { "m\($0)" })  // once each, in order
            let first = try #require(mine.first).offset
            #expect(mine.map(\.offset) == Array(first..<(first + 150)))  // consecutive offsets
            #expect(
                try await consumer.poll(maxRecords: 200, timeout: .milliseconds(300)).filter { $0.key.hasPrefix(p) }
                    .isEmpty)
        }
    }
}
