import Foundation
import GatehouseBus
import GatehouseCore
import GatehouseDomain
import GatehouseStore
import Synchronization

/// Consumes commands from the bus and applies them exactly once: the database
/// transaction (rules + EMMs + request status) commits first, the bus offset after it.
/// A crash in between redelivers the command, which then finds its request no longer
/// `accepted` and changes nothing.
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
        /// Records fetched per poll. Default 200.
        public var batchSize = 200
        /// For crash tests only (`GATEHOUSE_FAULT_WORKER_CRASH_AFTER`): the process kills
        /// itself with SIGKILL right after its Nth database commit, before committing the
        /// bus offset: the exact window exactly-once has to survive. Unset in production.
        public var crashAfterApplies: Int?
        public init() {}

        public init(_ source: ConfigSource) throws {
            self.init()
            maximumAttempts = try source.int("GATEHOUSE_WORKER_MAX_ATTEMPTS", default: 5, in: 1...1000)
            if source.string("GATEHOUSE_FAULT_WORKER_CRASH_AFTER") != nil {
                crashAfterApplies = try source.int("GATEHOUSE_FAULT_WORKER_CRASH_AFTER", default: 0, in: 1...Int.max)
            }
        }
    }

    public let name = "worker"
    let applier: CommandApplier
    let consumer: any BusConsumer
    let producer: any BusProducer
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
        self.producer = producer
        self.deadLetterTopic = deadLetterTopic
        self.options = options
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        defer { Task { [consumer] in await consumer.close() } }
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
            for record in records {
                guard try await handle(record) else { return }
            }
        }
    }

    /// Applies one record and commits it; false when cancelled before it could finish
    /// (the record stays uncommitted and is redelivered).
    func handle(_ record: BusRecord) async throws -> Bool {
        let command: Command
        do {
            command = try Command.decode(record.value)
        } catch {
            try await deadLetter(record, reason: "undecodable command: \(error)", requestID: nil)
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

    private func commit(_ record: BusRecord) async throws -> Bool {
        while true {
            do {
                try await consumer.commit(record)
                return true
            } catch is CancellationError {
                return false
            } catch {
                logger.warning("worker.commit_failed", ["bus.offset": String(record.offset), "error": String(describing: error)])
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
