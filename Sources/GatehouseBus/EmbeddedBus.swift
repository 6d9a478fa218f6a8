import Foundation
import GatehouseCore
import GatehouseStore
import Synchronization

/// The embedded bus's SQL, written once for both dialects (only the upserts differ).
enum EmbeddedBusSQL {
    static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }

    /// Creates the topic's offset row if missing; run in autocommit, before a publish
    /// transaction. (Inside one, MariaDB's gap lock from an UPDATE that matched nothing
    /// makes two first publishers deadlock on the INSERT.)
    static func createTopic(_ connection: any SQLConnection, topic: String) throws {
        let insert =
            connection.dialect == .sqlite
            ? "INSERT OR IGNORE INTO bus_topics (topic, last_offset) VALUES (?, -1)"
            : "INSERT IGNORE INTO bus_topics (topic, last_offset) VALUES (?, -1)"
        try connection.execute(insert, .text(topic))
    }

    /// Appends messages to `topic`, in order, with consecutive offsets, and returns the last
    /// offset. Must run in a write transaction.
    ///
    /// Bumping `bus_topics.last_offset` first (once, by the number of messages) takes the
    /// topic's row lock until commit, so on MariaDB concurrent publishers commit their offsets
    /// in order and a reader never sees offset n+1 before n (an auto-increment id would leave
    /// such gaps). SQLite has one writer anyway.
    static func append(
        _ connection: any SQLConnection, topic: String, messages: ArraySlice<BusMessage>, at now: Int64
    ) throws -> Int64 {
        let count = Int64(messages.count)
        precondition(count > 0, "append needs at least one message")
        var bumped = try connection.execute(
            "UPDATE bus_topics SET last_offset = last_offset + ? WHERE topic = ?", .int64(count), .text(topic)
        ).affectedRows
        if bumped == 0 {
            // Normally created beforehand (`createTopic`); this covers a row deleted since.
            try createTopic(connection, topic: topic)
            bumped = try connection.execute(
                "UPDATE bus_topics SET last_offset = last_offset + ? WHERE topic = ?", .int64(count), .text(topic)
            ).affectedRows
        }
        guard bumped == 1,
            let last = try connection.queryFirst("SELECT last_offset FROM bus_topics WHERE topic = ?", .text(topic))?
                .int64("last_offset")
        else {
            throw GatehouseError(.bus, "the embedded bus could not allocate an offset in topic \(topic)")
        }
        var offset = last - count + 1
        var start = messages.startIndex
        for size in insertChunkSizes {
            guard let sql = insertSQL[size] else { continue }
            while messages.endIndex - start >= size {
                var parameters: [SQLValue] = []
                parameters.reserveCapacity(size * 5)
                for message in messages[start..<(start + size)] {
                    parameters.append(.text(topic))
                    parameters.append(.int64(offset))
                    parameters.append(.text(message.key))
                    parameters.append(.blob(message.value))
                    parameters.append(.int64(now))
                    offset += 1
                }
                try connection.execute(sql, parameters)
                start += size
            }
        }
        return last
    }

    /// Messages per INSERT, largest first: a relay batch of 500 takes 11 statements instead
    /// of 500, with three statement texts for the connection's prepared-statement cache.
    static let insertChunkSizes = [64, 8, 1]
    static let insertSQL: [Int: String] = Dictionary(
        uniqueKeysWithValues: insertChunkSizes.map { size in
            (size,
                "INSERT INTO bus_messages (topic, message_offset, partition_key, payload, created_at) VALUES "
                    + Array(repeating: "(?, ?, ?, ?, ?)", count: size).joined(separator: ", "))
        })

    /// The offset a group resumes at (0 when it never committed).
    static func committedNextOffset(_ connection: any SQLConnection, group: String, topic: String) throws -> Int64 {
        try connection.queryFirst(
            "SELECT next_offset FROM bus_offsets WHERE consumer_group = ? AND topic = ?", .text(group), .text(topic)
        )?.int64("next_offset") ?? 0
    }

    /// Messages in `topic` that `group` has not committed yet: the last offset stored plus
    /// one, less the group's committed next offset (0 for an unknown topic).
    static func lag(_ connection: any SQLConnection, group: String, topic: String) throws -> Int {
        guard
            let last = try connection.queryFirst("SELECT last_offset FROM bus_topics WHERE topic = ?", .text(topic))?
                .int64("last_offset")
        else { return 0 }
        return Int(max(0, last + 1 - (try committedNextOffset(connection, group: group, topic: topic))))
    }

    static func storeOffset(_ connection: any SQLConnection, group: String, topic: String, next: Int64) throws {
        let sql =
            connection.dialect == .sqlite
            ? "INSERT INTO bus_offsets (consumer_group, topic, next_offset, updated_at) VALUES (?, ?, ?, ?) "
                + "ON CONFLICT (consumer_group, topic) DO UPDATE SET next_offset = excluded.next_offset, "
                + "updated_at = excluded.updated_at"
            : "INSERT INTO bus_offsets (consumer_group, topic, next_offset, updated_at) VALUES (?, ?, ?, ?) "
                + "ON DUPLICATE KEY UPDATE next_offset = VALUES(next_offset), updated_at = VALUES(updated_at)"
        try connection.execute(sql, .text(group), .text(topic), .int64(next), .int64(now()))
    }
}

/// Publishes into the `bus_messages` table: a publish returns once its transaction committed.
public final class EmbeddedBusProducer: BusProducer {
    private let database: any SQLDatabase
    private let logger: Logger
    private let isClosed = Atomic<Bool>(false)
    /// Topics whose `bus_topics` row this producer has made sure of.
    private let knownTopics = Mutex<Set<String>>([])

    public init(database: any SQLDatabase, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    public func publish(topic: String, key: String, value: [UInt8]) async throws {
        try await publish(batch: [BusMessage(topic: topic, key: key, value: value)])
    }

    /// Whether this producer stores into `database` itself (the same pool object), so a
    /// transaction on it can append to the bus together with its own writes (`append(_:in:)`).
    public func stores(in database: any SQLDatabase) -> Bool {
        (self.database as AnyObject) === (database as AnyObject)
    }

    /// Checks the batch (producer open, topic names) and makes sure of each topic's offset
    /// row, in autocommit, before any transaction appends to it.
    public func prepare(_ batch: [BusMessage]) async throws {
        guard !isClosed.load(ordering: .relaxed) else {
            throw GatehouseError(.bus, "the bus producer is closed")
        }
        for message in batch where !Bus.isValidName(message.topic) {
            throw GatehouseError(.invalidInput, "bus topic names are 1-249 characters of a-z A-Z 0-9 . _ -")
        }
        let missing = Set(batch.map(\.topic)).subtracting(knownTopics.withLock { $0 })
        if !missing.isEmpty {
            try await database.withConnection { connection in
                for topic in missing { try EmbeddedBusSQL.createTopic(connection, topic: topic) }
            }
            knownTopics.withLock { $0.formUnion(missing) }
        }
    }

    /// Appends `batch` inside the caller's write transaction on this producer's database
    /// (`stores(in:)` must be true, and `prepare` must have run for the batch): the messages
    /// are on the bus if and only if that transaction commits. This is how the outbox relay
    /// moves rows to the embedded bus and marks them published atomically.
    /// - Parameter now: the messages' `created_at`, milliseconds since the epoch.
    /// - Returns: the offset of the last message.
    @discardableResult
    public func append(_ batch: [BusMessage], in connection: any SQLConnection, at now: Int64) throws -> Int64
    {
        // Runs of consecutive messages to one topic share one offset allocation.
        var last: Int64 = -1
        var start = batch.startIndex
        while start < batch.endIndex {
            var end = start + 1
            while end < batch.endIndex, batch[end].topic == batch[start].topic { end += 1 }
            last = try EmbeddedBusSQL.append(connection, topic: batch[start].topic, messages: batch[start..<end], at: now)
            start = end
        }
        return last
    }

    /// Messages in `topic` that `group` has not committed yet, read on `connection` (any
    /// connection to this producer's database). The API uses it as its backlog when it
    /// publishes in its own transactions.
    public static func lag(_ connection: any SQLConnection, group: String, topic: String) throws -> Int {
        try EmbeddedBusSQL.lag(connection, group: group, topic: topic)
    }

    /// All messages in one transaction: stored together or not at all.
    public func publish(batch: [BusMessage]) async throws {
        guard !batch.isEmpty else {
            guard !isClosed.load(ordering: .relaxed) else { throw GatehouseError(.bus, "the bus producer is closed") }
            return
        }
        try await prepare(batch)
        let now = EmbeddedBusSQL.now()
        var attempt = 1
        let last: Int64
        while true {
            do {
                last = try await database.transaction { [self] connection in
                    try append(batch, in: connection, at: now)
                }
                break
            } catch let error as GatehouseError where error.code == .unavailable && attempt < 5 {
                // A deadlock or lock timeout rolled the transaction back: nothing was stored.
                logger.debug(
                    "bus publish retried", ["bus.attempt": String(attempt), "error": String(describing: error)])
                attempt += 1
                try await Task.sleep(for: .milliseconds(5 * attempt))
            }
        }
        logger.trace("bus messages stored", ["bus.count": String(batch.count), "bus.offset.last": String(last)])
    }

    /// Nothing is buffered: every publish committed before it returned.
    public func flush() async throws {}

    public func close() async { isClosed.store(true, ordering: .relaxed) }
}

/// Reads `bus_messages` after the group's committed offset, waiting by polling the table.
///
/// The consumer keeps its own position (what it handed out) ahead of the committed offset,
/// so consecutive polls do not return the same records; a new consumer of the group starts
/// at the committed offset, which is how uncommitted records are redelivered.
public final class EmbeddedBusConsumer: BusConsumer {
    public struct Options: Sendable {
        /// How often a waiting `poll` looks at the table again. Default 10 ms.
        public var pollInterval: Duration = .milliseconds(10)
        /// Delete messages every group has committed, at most this often. Default 30 s;
        /// `nil` keeps every message.
        public var retentionInterval: Duration? = .seconds(30)
        /// Only messages at least this old are deleted, so a group that starts later (or a
        /// replay after an incident) still finds recent history. Default 1 hour.
        public var retentionMinimumAge: Duration = .seconds(3600)
        /// Rows deleted per retention statement. Default 10 000.
        public var retentionBatch: Int = 10_000
        public init() {}
    }

    private struct State {
        /// Next offset to hand out per topic; `nil` until read from `bus_offsets`.
        var positions: [String: Int64] = [:]
        var lastRetention: ContinuousClock.Instant?
        var isClosed = false
    }

    private let database: any SQLDatabase
    private let group: String
    private let topics: [String]
    private let options: Options
    private let logger: Logger
    private let state = Mutex(State())

    public init(
        database: any SQLDatabase, group: String, topics: [String], options: Options = Options(), logger: Logger
    ) {
        self.database = database
        self.group = group
        self.topics = topics
        self.options = options
        self.logger = logger
    }

    public func poll(maxRecords: Int, timeout: Duration) async throws -> [BusRecord] {
        precondition(maxRecords > 0, "maxRecords must be positive")
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let records = try await fetch(maxRecords: maxRecords)
            if !records.isEmpty { return records }
            try Task.checkCancellation()
            let now = clock.now
            if now >= deadline { return [] }
            try await Task.sleep(for: min(options.pollInterval, now.duration(to: deadline)))
        }
    }

    private func fetch(maxRecords: Int) async throws -> [BusRecord] {
        let (known, isClosed) = state.withLock { ($0.positions, $0.isClosed) }
        guard !isClosed else { throw GatehouseError(.bus, "the bus consumer is closed") }
        let group = self.group
        let topics = self.topics
        let (records, positions) = try await database.read { connection in
            var positions = known
            var records: [BusRecord] = []
            for topic in topics where records.count < maxRecords {
                let from =
                    try positions[topic]
                    ?? EmbeddedBusSQL.committedNextOffset(connection, group: group, topic: topic)
                positions[topic] = from
                let rows = try connection.query(
                    "SELECT message_offset, partition_key, payload FROM bus_messages "
                        + "WHERE topic = ? AND message_offset >= ? ORDER BY message_offset LIMIT ?",
                    .text(topic), .int64(from), .int64(Int64(maxRecords - records.count)))
                for row in rows {
                    records.append(
                        BusRecord(
                            topic: topic, partition: 0, offset: try row.int64("message_offset"),
                            key: try row.text("partition_key"), value: try row.blob("payload")))
                }
                if let last = records.last, last.topic == topic { positions[topic] = last.offset + 1 }
            }
            return (records, positions)
        }
        state.withLock { state in
            // Only move forward: a concurrent poll on this consumer may have advanced already.
            for (topic, next) in positions { state.positions[topic] = max(state.positions[topic] ?? next, next) }
        }
        if !records.isEmpty {
            logger.trace(
                "bus records polled",
                ["bus.count": String(records.count), "bus.offset.first": String(records[0].offset)])
        }
        return records
    }

    /// Whether this consumer keeps its offsets in `database` itself (the same pool object),
    /// so they can be committed inside a transaction on it (`commit(_:in:)`).
    public func stores(in database: any SQLDatabase) -> Bool {
        (self.database as AnyObject) === (database as AnyObject)
    }

    /// Commits `records` (for each topic, the highest offset among them) inside the
    /// caller's write transaction on this consumer's database: the worker's effects and its
    /// position commit together, so nothing is redelivered after a crash and the batch
    /// costs one commit instead of two. Call `didCommit()` once that transaction committed.
    /// - Throws: `.bus` when the consumer is closed; database errors.
    public func commit(_ records: [BusRecord], in connection: any SQLConnection) throws {
        guard !state.withLock({ $0.isClosed }) else { throw GatehouseError(.bus, "the bus consumer is closed") }
        var next: [String: Int64] = [:]
        for record in records { next[record.topic] = max(next[record.topic] ?? 0, record.offset + 1) }
        for (topic, offset) in next.sorted(by: { $0.key < $1.key }) {
            try EmbeddedBusSQL.storeOffset(connection, group: group, topic: topic, next: offset)
        }
    }

    /// After a transaction with `commit(_:in:)` committed: the housekeeping `commit` does.
    public func didCommit() async throws { try await retainIfDue() }

    public func commit(_ record: BusRecord) async throws {
        guard !state.withLock({ $0.isClosed }) else { throw GatehouseError(.bus, "the bus consumer is closed") }
        let group = self.group
        try await database.transaction { connection in
            try EmbeddedBusSQL.storeOffset(connection, group: group, topic: record.topic, next: record.offset + 1)
        }
        try await retainIfDue()
    }

    /// Deletes messages older than `retentionMinimumAge` that every group reading a topic
    /// has committed, at most every `retentionInterval`. Topics no group has committed in
    /// (the dead-letter topic until someone reads it) keep everything.
    private func retainIfDue() async throws {
        guard let interval = options.retentionInterval else { return }
        let now = ContinuousClock.now
        let isDue = state.withLock { state in
            if let last = state.lastRetention, last.duration(to: now) < interval { return false }
            state.lastRetention = now
            return true
        }
        guard isDue else { return }
        let topics = self.topics
        let batch = Int64(options.retentionBatch)
        let age = options.retentionMinimumAge
        let before =
            EmbeddedBusSQL.now() - age.components.seconds * 1000 - age.components.attoseconds / 1_000_000_000_000_000
        let deleted = try await database.withConnection { connection in
            var deleted = 0
            for topic in topics {
                guard
                    let floor = try connection.queryFirst(
                        "SELECT MIN(next_offset) AS floor FROM bus_offsets WHERE topic = ?", .text(topic))?
                        .int64OrNil("floor")
                else { continue }
                // Bounded statements so the writer is never held for long; the rest goes next time.
                let sql =
                    connection.dialect == .sqlite
                    ? "DELETE FROM bus_messages WHERE topic = ? AND message_offset IN "
                        + "(SELECT message_offset FROM bus_messages WHERE topic = ? AND message_offset < ? "
                        + "AND created_at <= ? ORDER BY message_offset LIMIT ?)"
                    : "DELETE FROM bus_messages WHERE topic = ? AND message_offset < ? AND created_at <= ? "
                        + "ORDER BY message_offset LIMIT ?"
                let parameters: [SQLValue] =
                    connection.dialect == .sqlite
                    ? [.text(topic), .text(topic), .int64(floor), .int64(before), .int64(batch)]
                    : [.text(topic), .int64(floor), .int64(before), .int64(batch)]
                deleted += try connection.execute(sql, parameters).affectedRows
            }
            return deleted
        }
        if deleted > 0 { logger.debug("bus messages deleted after commit", ["bus.count": String(deleted)]) }
    }

    public func close() async { state.withLock { $0.isClosed = true } }
}
