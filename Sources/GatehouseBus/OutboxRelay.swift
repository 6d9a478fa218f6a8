import Foundation
import GatehouseCore
import GatehouseStore

/// Moves accepted commands from the transactional `outbox` table to the bus.
///
/// The API writes a request and its outbox row in one transaction; the relay publishes
/// unpublished rows in id order, keyed by `partition_key` (the device id), waits until the
/// bus holds them durably, then sets `published_at` for the batch in one transaction.
/// A crash between publishing and marking publishes those rows again on restart:
/// delivery is at-least-once, and the worker is idempotent by request id.
///
/// When the bus is the embedded one in the relay's own database, publishing and marking
/// are one transaction instead (the bus rows are appended and the outbox rows stamped
/// together), so the batch moves exactly once, with one commit instead of two.
///
/// - Important: run one relay per database. Two would both publish every row (harmless
///   duplicates, but twice the traffic).
public final class OutboxRelay: Sendable {
    public struct Options: Sendable {
        /// Rows read, published and marked together. Default 500.
        public var batchSize: Int = 500
        /// How long `run` waits when the outbox is empty. Default 20 ms.
        public var idleInterval: Duration = .milliseconds(20)
        /// A request still `accepted` this long after its row was published is published
        /// again (its command was lost, or the worker is stuck). Default 60 s
        /// (`GATEHOUSE_RELAY_REPUBLISH_SECONDS`). `nil` never republishes.
        public var republishAfter: Duration? = .seconds(60)
        /// How often `run` looks for such requests. Default 10 s.
        public var republishCheckInterval: Duration = .seconds(10)
        /// Wait after a failed round before the next (database or bus down). Default 1 s.
        public var errorBackoff: Duration = .seconds(1)

        public init() {}

        /// Reads `GATEHOUSE_RELAY_BATCH` and `GATEHOUSE_RELAY_REPUBLISH_SECONDS` (0 disables).
        public init(_ source: ConfigSource) throws {
            batchSize = try source.int("GATEHOUSE_RELAY_BATCH", default: batchSize, in: 1...10_000)
            let seconds = try source.seconds("GATEHOUSE_RELAY_REPUBLISH_SECONDS", default: 60)
            republishAfter = seconds == 0 ? nil : .milliseconds(Int64(seconds * 1000))
        }

        /// As `init(_:)`, for a relay feeding `bus`. On the embedded bus the API appends each
        /// command in its request's own transaction and the bus keeps it until the worker's
        /// group has committed it, so nothing can be lost on the way: republishing would only
        /// add duplicates (which count in the API's backlog), and is off unless
        /// `GATEHOUSE_RELAY_REPUBLISH_SECONDS` is set.
        public init(_ source: ConfigSource, bus: BusSettings) throws {
            try self.init(source)
            if bus.configuration == .embedded && source.string("GATEHOUSE_RELAY_REPUBLISH_SECONDS") == nil {
                republishAfter = nil
            }
        }
    }

    private let database: any SQLDatabase
    private let producer: any BusProducer
    private let topic: String
    private let logger: Logger
    private let options: Options
    private let published: MetricSeries?
    private let republished: MetricSeries?

    /// - Parameter metrics: when given, counts `gatehouse_outbox_published_total` and
    ///   `gatehouse_outbox_republished_total`.
    public init(
        database: any SQLDatabase, producer: any BusProducer, topic: String, logger: Logger,
        options: Options = Options(), metrics: MetricsRegistry? = nil
    ) {
        precondition(options.batchSize > 0, "batchSize must be positive")
        self.database = database
        self.producer = producer
        self.topic = topic
        self.logger = logger
        self.options = options
        self.published = metrics?.counter(
            "gatehouse_outbox_published_total", help: "Outbox rows published to the bus.")
        self.republished = metrics?.counter(
            "gatehouse_outbox_republished_total",
            help: "Outbox rows published again because their request stayed accepted.")
    }

    /// Relays until the task is cancelled. Failures are logged and retried after
    /// `errorBackoff`; only cancellation ends the loop.
    public func run() async throws {
        logger.info("outbox relay started", ["bus.topic": topic, "relay.batch": String(options.batchSize)])
        let clock = ContinuousClock()
        var lastRepublishCheck = clock.now
        while !Task.isCancelled {
            do {
                var count = try await runOnce()
                if options.republishAfter != nil,
                    lastRepublishCheck.duration(to: clock.now) >= options.republishCheckInterval
                {
                    lastRepublishCheck = clock.now
                    count += try await republishStale()
                }
                if count == 0 { try await Task.sleep(for: options.idleInterval) }
            } catch is CancellationError {
                break
            } catch {
                logger.error("outbox relay round failed", ["error": String(describing: error)])
                try? await Task.sleep(for: options.errorBackoff)
            }
        }
        logger.info("outbox relay stopped")
    }

    /// Publishes one batch of unpublished rows (oldest first) and marks them.
    /// - Returns: the number of rows published (0 when the outbox is empty).
    /// - Throws: database or bus errors; nothing is marked then, so the rows go out again.
    @discardableResult
    public func runOnce() async throws -> Int {
        let limit = Int64(options.batchSize)
        let rows = try await database.read { connection in
            try connection.query(
                "SELECT id, request_id, partition_key, payload FROM outbox WHERE published_at IS NULL "
                    + "ORDER BY id LIMIT ?", .int64(limit)
            ).map { row in
                OutboxRow(
                    id: try row.int64("id"), requestID: try row.text("request_id"),
                    key: try row.text("partition_key"), payload: try row.blob("payload"))
            }
        }
        guard !rows.isEmpty else { return 0 }
        try await publishAndMark(rows)
        published?.increment(by: Double(rows.count))
        logger.debug(
            "outbox rows published",
            [
                "relay.count": String(rows.count), "relay.first_id": String(rows[0].id),
                "relay.last_id": String(rows[rows.count - 1].id),
            ])
        return rows.count
    }

    /// Publishes again the rows of requests still `accepted` more than `republishAfter`
    /// after they were published, and restamps them (so the next try is as far away).
    /// - Returns: the number of rows published again.
    @discardableResult
    public func republishStale(now: Date = Date()) async throws -> Int {
        guard let after = options.republishAfter else { return 0 }
        let cutoff =
            Self.milliseconds(now) - after.components.seconds * 1000 - after.components.attoseconds
            / 1_000_000_000_000_000
        let limit = Int64(options.batchSize)
        let rows = try await database.read { connection in
            // From the still-accepted requests (few, by index, oldest first) to their outbox
            // rows (by request id), never the other way round: the outbox holds all history.
            // CROSS JOIN keeps that order in SQLite's planner.
            try connection.query(
                "SELECT o.id AS id, o.request_id AS request_id, o.partition_key AS partition_key, "
                    + "o.payload AS payload FROM requests r CROSS JOIN outbox o ON o.request_id = r.request_id "
                    + "WHERE r.status = 'accepted' AND o.published_at IS NOT NULL AND o.published_at < ? "
                    + "ORDER BY r.accepted_at, o.id LIMIT ?", .int64(cutoff), .int64(limit)
            ).map { row in
                OutboxRow(
                    id: try row.int64("id"), requestID: try row.text("request_id"),
                    key: try row.text("partition_key"), payload: try row.blob("payload"))
            }
        }
        guard !rows.isEmpty else { return 0 }
        for row in rows {
            logger.warning(
                "outbox row published again: its request is still accepted",
                ["request.id": row.requestID, "relay.id": String(row.id), "device.id": row.key])
        }
        try await publishAndMark(rows, at: now)
        republished?.increment(by: Double(rows.count))
        return rows.count
    }

    private func publishAndMark(_ rows: [OutboxRow], at now: Date = Date()) async throws {
        let topic = self.topic
        let messages = rows.map { BusMessage(topic: topic, key: $0.key, value: $0.payload) }
        let stamp = Self.milliseconds(now)
        let ids = rows.map(\.id)
        if let embedded = producer as? EmbeddedBusProducer, embedded.stores(in: database) {
            // Same database: the bus rows and the stamps commit together.
            try await embedded.prepare(messages)
            var attempt = 1
            while true {
                do {
                    try await database.transaction { connection in
                        try embedded.append(messages, in: connection, at: stamp)
                        try Self.markPublished(connection, ids: ids, at: stamp)
                    }
                    return
                } catch let error as GatehouseError where error.code == .unavailable && attempt < 5 {
                    // A deadlock or lock timeout (MariaDB) rolled it all back: try again, as the
                    // producer's own publish does.
                    logger.debug("outbox relay retried", ["relay.attempt": String(attempt), "error": error.description])
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(5 * attempt))
                }
            }
        }
        try await producer.publish(batch: messages)
        try await database.transaction { connection in
            try Self.markPublished(connection, ids: ids, at: stamp)
        }
    }

    /// Rows stamped per UPDATE statement when marking a batch.
    static let markChunk = 64

    /// Stamps `published_at` on `ids`, `markChunk` rows per statement (one round trip to
    /// MariaDB instead of one per row). A short last chunk is padded by repeating its last
    /// id, so there is one statement text (one prepared statement) for every batch size.
    static func markPublished(_ connection: any SQLConnection, ids: [Int64], at stamp: Int64) throws {
        let sql =
            "UPDATE outbox SET published_at = ? WHERE id IN ("
            + Array(repeating: "?", count: markChunk).joined(separator: ", ") + ")"
        var start = 0
        while start < ids.count {
            let chunk = ids[start..<min(start + markChunk, ids.count)]
            var parameters: [SQLValue] = [.int64(stamp)]
            parameters.reserveCapacity(markChunk + 1)
            for id in chunk { parameters.append(.int64(id)) }
            while parameters.count < markChunk + 1 { parameters.append(.int64(chunk.last!)) }
            try connection.execute(sql, parameters)
            start += markChunk
        }
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }
}

struct OutboxRow: Sendable {
    var id: Int64
    var requestID: String
    var key: String
    var payload: [UInt8]
}
