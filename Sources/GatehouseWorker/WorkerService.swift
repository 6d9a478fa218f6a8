import Foundation
import GatehouseBus
import GatehouseCore
import GatehouseDomain
import GatehouseStore
import Synchronization

/// Consumes commands from the bus and applies them exactly once: the database
/// transaction (rules + EMMs + request status) commits first, the bus offset after it.
/// A crash in between redelivers the command, which then finds its request no longer
/// `accepted` and changes nothing. On the embedded bus in the worker's own database the
/// offsets of a batch are written inside its transaction instead: one commit, and nothing
/// to redeliver.
///
/// Poison messages (undecodable, unknown kind, or failing `maximumAttempts` times for a
/// reason that is not a passing outage) go to the dead-letter topic with the reason,
/// their request is marked failed, and the partition moves on.
public final class WorkerService: GatehouseService {
    public struct Options: Sendable {
        /// Attempts before a command that keeps failing is dead-lettered. Default 5.
        public var maximumAttempts = 5
        /// Pause after a passing failure (database or bus unavailable). Default 1 s.
        public var retryBackoff: Duration = .seconds(1)
        /// Records fetched per poll, and the most commands applied in one database
        /// transaction. Default 200 (`GATEHOUSE_WORKER_BATCH`); 1 applies one command per
        /// transaction.
        public var batchSize = 200
        /// For crash tests only (`GATEHOUSE_FAULT_WORKER_CRASH_AFTER`): the process kills
        /// itself with SIGKILL right after its Nth database commit, before committing the
        /// bus offset: the exact window exactly-once has to survive (on the embedded bus the
        /// offsets commit inside that transaction, so there the restart is what is tested).
        /// Unset in production.
        public var crashAfterApplies: Int?
        /// How long a refused offset commit is retried before the worker stops with an error,
        /// so that its supervisor restarts it into the consumer group (a Kafka consumer that
        /// did not poll for `max.poll.interval.ms`, 300 s, has left its group and would be
        /// refused for ever). Default 60 s (`GATEHOUSE_WORKER_COMMIT_TIMEOUT`).
        public var commitTimeout: Duration = .seconds(60)
        public init() {}

        public init(_ source: ConfigSource) throws {
            self.init()
            maximumAttempts = try source.int("GATEHOUSE_WORKER_MAX_ATTEMPTS", default: 5, in: 1...1000)
            batchSize = try source.int("GATEHOUSE_WORKER_BATCH", default: batchSize, in: 1...10_000)
            let commitSeconds = try source.seconds("GATEHOUSE_WORKER_COMMIT_TIMEOUT", default: 60)
            guard commitSeconds >= 1 else {
                throw GatehouseError(.configuration, "GATEHOUSE_WORKER_COMMIT_TIMEOUT must be at least 1 second")
            }
            commitTimeout = .milliseconds(Int64(commitSeconds * 1000))
            if source.string("GATEHOUSE_FAULT_WORKER_CRASH_AFTER") != nil {
                crashAfterApplies = try source.int("GATEHOUSE_FAULT_WORKER_CRASH_AFTER", default: 0, in: 1...Int.max)
            }
        }
    }

    public let name = "worker"
    let applier: CommandApplier
    let consumer: any BusConsumer
    let producer: any BusProducer
    /// The consumer, when it is the embedded bus in the applier's own database: a batch's
    /// offsets then go into the batch's transaction (one commit, no redelivery after a crash).
    let offsetsInTransaction: EmbeddedBusConsumer?
    let deadLetterTopic: String
    let options: Options
    let logger: Logger
    let metrics: MetricsRegistry
    private let applied = Mutex(0)

    public init(applier: CommandApplier, consumer: any BusConsumer, producer: any BusProducer, deadLetterTopic: String,
        options: Options = Options(), metrics: MetricsRegistry, logger: Logger)
    {
        self.applier = applier
        self.consumer = consumer
        let embedded = consumer as? EmbeddedBusConsumer
        self.offsetsInTransaction = embedded.flatMap { $0.stores(in: applier.database) ? $0 : nil }
        self.producer = producer
        self.deadLetterTopic = deadLetterTopic
        self.options = options
        self.metrics = metrics
        self.logger = logger
    }

    /// Consumes until cancelled, then closes the consumer (a Kafka consumer leaves its group
    /// at once, so its partitions move now rather than after the session timeout).
    /// - Throws: when the bus keeps refusing offset commits (see `Options.commitTimeout`) or
    ///   a dead letter cannot be written.
    public func run() async throws {
        do {
            try await consume()
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }

    private func consume() async throws {
        while !Task.isCancelled {
            let records: [BusRecord]
            do {
                records = try await consumer.poll(maxRecords: options.batchSize, timeout: .milliseconds(250))
            } catch is CancellationError {
                return
            } catch {
                logger.warning("worker.poll_failed", ["error": String(describing: error)])
                try? await Task.sleep(for: options.retryBackoff)
                continue
            }
            guard try await handleBatch(records) else { return }
        }
    }

    /// Applies a polled batch: runs of decodable commands go through
    /// `CommandApplier.applyBatch` (one database transaction each), then the bus offsets
    /// of the run are committed, after the database commit. Anything unusual goes through
    /// `handle` one record at a time, as before: an undecodable record (dead letter), a
    /// command that breaks a rule (its refusal is recorded on its own; the commands before
    /// it are applied as a batch again), an infrastructure failure (retries, dead letter).
    /// - Returns: false when cancelled (uncommitted records are redelivered).
    func handleBatch(_ records: [BusRecord]) async throws -> Bool {
        var index = 0
        var limit = options.batchSize
        var aloneAt: Int?
        while index < records.count {
            if Task.isCancelled { return false }
            var commands: [Command] = []
            var end = index
            if aloneAt != index {
                while end < records.count, commands.count < limit, end != aloneAt,
                    let command = try? Command.decode(records[end].value)
                {
                    commands.append(command)
                    end += 1
                }
            }
            limit = options.batchSize
            if commands.count < 2 {
                guard try await handle(records[index]) else { return false }
                index += 1
                continue
            }
            // The last record of each partition in the run: what the offset commit names.
            var last: [String: BusRecord] = [:]
            for record in records[index..<end] {
                let key = "\(record.topic)/\(record.partition)"
                if let seen = last[key], seen.offset > record.offset { continue }
                last[key] = record
            }
            let toCommit = last.values.sorted(by: { $0.offset < $1.offset })
            // In the batch's transaction when the bus allows it, else committed after it.
            let inTransaction = offsetsInTransaction
            var commitOffsets: (@Sendable (any SQLConnection) throws -> Void)?
            if let inTransaction {
                commitOffsets = { connection in try inTransaction.commit(toCommit, in: connection) }
            }
            let started = ContinuousClock.now
            let outcome: CommandApplier.BatchOutcome
            do {
                outcome = try await applier.applyBatch(commands, alsoInTransaction: commitOffsets)
            } catch is CancellationError {
                return false
            } catch {
                // Nothing was stored: the one-by-one path retries (and dead-letters if need be).
                logger.warning("worker.batch_failed", [
                    "request.id": commands[0].requestID, "batch.size": String(commands.count),
                    "error": String(describing: error),
                ])
                guard try await handle(records[index]) else { return false }
                index += 1
                continue
            }
            switch outcome {
            case .stopped(let at):
                // Rolled back: the commands before `at` go again as a batch, then that one alone.
                aloneAt = index + at
                limit = at
            case .applied(let outcomes):
                let seconds = (ContinuousClock.now - started) / .seconds(1)
                count(outcomes, seconds: seconds)
                if let crashAfter = options.crashAfterApplies,
                    applied.withLock({ $0 += outcomes.count; return $0 }) >= crashAfter
                {
                    logger.warning("worker.fault_injected_crash", ["request.id": commands[commands.count - 1].requestID])
                    kill(getpid(), SIGKILL)
                }
                if let inTransaction {
                    do {
                        try await inTransaction.didCommit()
                    } catch {
                        logger.warning("worker.bus_housekeeping_failed", ["error": String(describing: error)])
                    }
                } else {
                    // After the database commit.
                    for record in toCommit {
                        guard try await commit(record) else { return false }
                    }
                }
                index = end
            }
        }
        return true
    }

    /// Applies one record and commits it; false when cancelled before it could finish
    /// (the record stays uncommitted and is redelivered).
    func handle(_ record: BusRecord) async throws -> Bool {
        let command: Command
        do {
            command = try Command.decode(record.value)
        } catch {
            // The request, when the bytes still name one (a kind this worker does not know),
            // is marked failed: else it would stay `accepted` for ever and be republished.
            try await deadLetter(
                record, reason: "undecodable command: \(error)", requestID: Self.requestID(inUndecodable: record.value))
            return try await commit(record)
        }
        var attempts = 0
        while true {
            if Task.isCancelled { return false }
            attempts += 1
            let started = ContinuousClock.now
            do {
                let outcome = try await applier.apply(command)
                let seconds = (ContinuousClock.now - started) / .seconds(1)
                count(outcome, seconds: seconds)
                if let crashAfter = options.crashAfterApplies, applied.withLock({ $0 += 1; return $0 }) >= crashAfter {
                    logger.warning("worker.fault_injected_crash", ["request.id": command.requestID])
                    kill(getpid(), SIGKILL)
                }
                return try await commit(record)
            } catch let error as GatehouseError where error.code == .unavailable {
                // A passing outage: wait and try again without counting it against the command.
                logger.warning("worker.retrying", ["request.id": command.requestID, "error": error.description])
                attempts -= 1
            } catch is CancellationError {
                return false
            } catch {
                logger.error("worker.apply_failed", [
                    "request.id": command.requestID, "attempt": String(attempts), "error": String(describing: error),
                ])
                if attempts >= options.maximumAttempts {
                    try await deadLetter(
                        record, reason: "failed \(attempts) times: \(error)", requestID: command.requestID)
                    return try await commit(record)
                }
            }
            try? await Task.sleep(for: options.retryBackoff)
        }
    }

    /// The `requestID` of a command that does not decode, when its bytes are still a JSON
    /// object naming one.
    static func requestID(inUndecodable bytes: [UInt8]) -> String? {
        guard case .string(let id)? = (try? JSONValue.parseObject(bytes))?["requestID"], !id.isEmpty, id.utf8.count <= 64
        else { return nil }
        return id
    }

    /// Commits `record`'s offset, retrying for up to `Options.commitTimeout`; false when
    /// cancelled first.
    /// - Throws: `.bus` past the timeout: the worker stops, and what it applied but did not
    ///   commit is delivered again after the restart and skipped (claimed by request id).
    private func commit(_ record: BusRecord) async throws -> Bool {
        let giveUpAt = ContinuousClock.now + options.commitTimeout
        while true {
            do {
                try await consumer.commit(record)
                return true
            } catch is CancellationError {
                return false
            } catch {
                logger.warning("worker.commit_failed", ["bus.offset": String(record.offset), "error": String(describing: error)])
                if ContinuousClock.now >= giveUpAt {
                    throw GatehouseError(.bus,
                        "the bus refused the offset commit of \(record.topic)[\(record.partition)]@\(record.offset) "
                            + "for \(options.commitTimeout) (\(error)); the worker stops so that a restart rejoins "
                            + "the consumer group: what it applied stays applied, and is skipped when delivered again")
                }
                try? await Task.sleep(for: options.retryBackoff)
                if Task.isCancelled { return false }
            }
        }
    }

    private func deadLetter(_ record: BusRecord, reason: String, requestID: String?) async throws {
        try await DeadLetter.publish(
            producer: producer, topic: deadLetterTopic, record: record, reason: reason, logger: logger)
        metrics.counter("gatehouse_worker_dead_lettered_total", help: "Commands sent to the dead-letter topic").increment()
        guard let requestID else { return }
        // Tell the caller: the request will not be applied.
        try await applier.database.withConnection { connection in
            try connection.execute(
                """
                UPDATE requests SET status = 'failed', processed_at = ?, reason = ?
                WHERE request_id = ? AND status = 'accepted'
                """, .int64(ISO8601.nowMillis()), .text("could not be applied; sent to the dead-letter topic"),
                .text(requestID))
        }
    }

    /// One counter update per outcome kind for a batch (the series lookups are not free).
    private func count(_ outcomes: [ApplyOutcome], seconds: Double) {
        var tally: [String: Int] = [:]
        for outcome in outcomes {
            switch outcome {
            case .processed: tally["processed", default: 0] += 1
            case .failed: tally["failed", default: 0] += 1
            case .alreadyApplied: tally["duplicate", default: 0] += 1
            }
        }
        for (label, n) in tally {
            metrics.counter("gatehouse_worker_commands_total", help: "Commands handled by the worker, by outcome",
                labels: [("outcome", label)]).increment(by: Double(n))
        }
        metrics.counter("gatehouse_worker_apply_seconds_total", help: "Time spent applying commands").increment(by: seconds)
    }

    private func count(_ outcome: ApplyOutcome, seconds: Double) {
        let label: String
        switch outcome {
        case .processed: label = "processed"
        case .failed: label = "failed"
        case .alreadyApplied: label = "duplicate"
        }
        metrics.counter("gatehouse_worker_commands_total", help: "Commands handled by the worker, by outcome",
            labels: [("outcome", label)]).increment()
        metrics.counter("gatehouse_worker_apply_seconds_total", help: "Time spent applying commands").increment(by: seconds)
    }
}
