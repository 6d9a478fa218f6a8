import Dispatch
import Foundation
import GatehouseCore
import Synchronization

/// Turns many small write transactions from concurrent threads into few database
/// transactions (group commit).
///
/// Each commit costs far more than the few inserts it carries: SQLite appends every page
/// the transaction touched to the WAL, MariaDB flushes its redo log. Callers hand their
/// piece of work to one committer thread, which runs every piece queued so far inside one
/// `transactionBlocking`, commits once, and reports each piece's outcome; pieces that
/// arrive meanwhile form the next batch. A caller learns of its outcome only after its
/// work is committed, so "durable before acknowledged" holds.
///
/// `submit` does not block: its completion runs on the committer thread (an HTTP server
/// answers from there, so no thread waits per request). `run` blocks until its own piece
/// is committed. The committer thread starts with the first piece and ends after a second
/// with nothing to do.
///
/// When a piece throws (one request's unique key collided, a constraint failed), the
/// transaction is rolled back, the other pieces run again together, and that caller gets its
/// error after they finished, so one caller's error never becomes another's. Pieces must therefore be safe
/// to run twice in a row after a rollback: plain statements, no side effects outside the
/// database. When the database itself fails, every piece of the batch gets its error.
public final class GroupCommit: Sendable {
    /// One caller's piece of work and what to do with its outcome. `body` and `finish` run
    /// on the committer thread only, one job at a time (hence `@unchecked`).
    private final class Job: @unchecked Sendable {
        let body: (any SQLConnection) throws -> Void
        let finish: ((any Error)?) -> Void

        init(_ body: @escaping (any SQLConnection) throws -> Void, finish: @escaping ((any Error)?) -> Void) {
            self.body = body
            self.finish = finish
        }
    }

    private struct State {
        var queue: [Job] = []
        var isCommitterRunning = false
        /// The committer is waiting on `work` for a piece to arrive.
        var isCommitterWaiting = false
    }

    private let database: any SQLDatabase
    private let maximumBatch: Int
    private let state = Mutex(State())
    /// Signalled when a piece arrives while the committer waits.
    private let work = DispatchSemaphore(value: 0)
    private let batches = Atomic<Int>(0)
    private let jobs = Atomic<Int>(0)

    /// - Parameters:
    ///   - maximumBatch: pieces per combined transaction at most (default 128), which bounds
    ///     how long the writer is held and how much one rollback redoes.
    public init(database: any SQLDatabase, maximumBatch: Int = 128) {
        precondition(maximumBatch >= 1)
        self.database = database
        self.maximumBatch = maximumBatch
    }

    /// Transactions run (rolled-back ones included), and pieces committed, since start (for
    /// tests and metrics).
    public var statistics: (transactions: Int, pieces: Int) {
        (batches.load(ordering: .relaxed), jobs.load(ordering: .relaxed))
    }

    /// Pieces queued behind the batch now running (for tests and metrics).
    public var waiting: Int { state.withLock { $0.queue.count } }

    /// Runs `body` in a write transaction, possibly shared with other callers' bodies, and
    /// returns once that transaction has committed.
    /// - Throws: what `body` throws (from its own transaction), or the database's error.
    /// - Important: blocking: call it from threads of your own, never from an async context.
    @discardableResult
    public func run<T>(_ body: @escaping (any SQLConnection) throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        // Written on the committer thread before `done` is signalled, read after the wait.
        nonisolated(unsafe) var outcome: Result<T, any Error>?
        submit(body) { result in
            outcome = result
            done.signal()
        }
        done.wait()
        guard let outcome else { preconditionFailure("GroupCommit: a piece finished without an outcome") }
        return try outcome.get()
    }

    /// Queues `body` for the next shared transaction and returns at once; `completion` gets
    /// its result (or its error, from its own transaction) on the committer thread once the
    /// transaction has committed. Keep `completion` short: the next batch waits for it.
    public func submit<T>(
        _ body: @escaping (any SQLConnection) throws -> T, completion: @escaping (Result<T, any Error>) -> Void
    ) {
        // Written and read on the committer thread only.
        nonisolated(unsafe) var output: T?
        let job = Job({ connection in output = try body(connection) }) { error in
            if let error {
                completion(.failure(error))
            } else if let value = output {
                completion(.success(value))
            } else {
                preconditionFailure("GroupCommit: a piece finished without a result or an error")
            }
        }
        let (start, signal) = state.withLock { state -> (Bool, Bool) in
            state.queue.append(job)
            if !state.isCommitterRunning {
                state.isCommitterRunning = true
                return (true, false)
            }
            if state.isCommitterWaiting {
                state.isCommitterWaiting = false
                return (false, true)
            }
            return (false, false)
        }
        if signal { work.signal() }
        if start {
            let thread = Thread { [self] in commitLoop() }
            thread.name = "group-commit"
            thread.start()
        }
    }

    /// The committer thread: batches until nothing has arrived for a second.
    private func commitLoop() {
        while true {
            let batch = state.withLock { state -> [Job] in
                let count = min(maximumBatch, state.queue.count)
                let batch = Array(state.queue.prefix(count))
                state.queue.removeFirst(count)
                if batch.isEmpty { state.isCommitterWaiting = true }
                return batch
            }
            if !batch.isEmpty {
                execute(batch)
                continue
            }
            if work.wait(timeout: .now() + 1) == .timedOut {
                let isDone = state.withLock { state -> Bool in
                    state.isCommitterWaiting = false
                    guard state.queue.isEmpty else { return false }
                    state.isCommitterRunning = false
                    return true
                }
                // A submit that saw us waiting may have signalled just after the timeout: the
                // extra signal only makes a later wait return early once, to an empty queue.
                if isDone { return }
            }
        }
    }

    /// Why a combined transaction failed: one piece's error, or the database's own.
    private struct PieceFailed: Error {
        var index: Int
        var error: any Error
    }

    /// Runs `batch` in one transaction. When a piece throws, it is dropped and the others run
    /// again together, without it (its failure may have come from an earlier piece of the
    /// batch, which is why it is not retried). Dropped pieces learn their error only after the
    /// others have committed (or failed): a request that lost a unique-key race to another of
    /// the same batch then finds the winner committed, not rolled back and waiting to rerun.
    ///
    /// When the database itself fails (BEGIN or COMMIT, a lock held elsewhere past the busy
    /// timeout, a lost connection), every piece gets that error at once: running them again
    /// one by one would make each wait for the same outage. A piece's `.database` error is
    /// taken as its own once (a row too large, say); a second one in the same batch is taken
    /// as the store failing (a full disk), and fails the rest.
    private func execute(_ batch: [Job]) {
        var pending = batch
        var dropped: [(job: Job, error: any Error)] = []
        var pieceDatabaseErrors = 0
        defer { for (job, error) in dropped { job.finish(error) } }
        while !pending.isEmpty {
            batches.add(1, ordering: .relaxed)
            do {
                try database.transactionBlocking { connection in
                    for (index, job) in pending.enumerated() {
                        do {
                            try job.body(connection)
                        } catch let error as GatehouseError where error.code == .unavailable {
                            throw error  // an outage, not this piece's fault
                        } catch let error as GatehouseError where error.code == .database && pieceDatabaseErrors > 0 {
                            throw error  // the second in this batch: the store is failing
                        } catch {
                            throw PieceFailed(index: index, error: error)
                        }
                    }
                }
            } catch let failed as PieceFailed {
                if let error = failed.error as? GatehouseError, error.code == .database { pieceDatabaseErrors += 1 }
                dropped.append((pending[failed.index], failed.error))
                pending.remove(at: failed.index)
                continue
            } catch {
                for job in pending { job.finish(error) }
                return
            }
            jobs.add(pending.count, ordering: .relaxed)
            for job in pending { job.finish(nil) }
            return
        }
    }
}
