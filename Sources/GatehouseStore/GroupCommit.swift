import Dispatch
import Synchronization

/// Turns many small write transactions from concurrent threads into few database
/// transactions (group commit).
///
/// Each commit costs far more than the few inserts it carries: SQLite appends every page
/// the transaction touched to the WAL, MariaDB flushes its redo log. When several HTTP
/// worker threads accept requests at once, the first to arrive becomes the leader: it
/// runs every transaction queued so far inside one `transactionBlocking`, commits once,
/// and wakes their threads; the others wait. A caller still returns only after its work
/// is committed, so "durable before acknowledged" holds.
///
/// When the combined transaction throws (one request's unique key collided, a constraint
/// failed), it is rolled back and each piece runs again in its own transaction, so one
/// caller's error never becomes another's. Pieces must therefore be safe to run twice in
/// a row after a rollback: plain statements, no side effects outside the database.
///
/// - Important: blocking, like `SQLDatabase.transactionBlocking`: call `run` from threads
///   of your own (libmicrohttpd's workers), never from an async context.
public final class GroupCommit: Sendable {
    /// One caller's piece of work and its hand-off with the leader. Fields are written by
    /// one thread before the semaphore is signalled and read by the waiter after its wait
    /// returns, so the semaphore orders every access (hence `@unchecked`).
    private final class Job: @unchecked Sendable {
        enum Wakeup {
            case done
            case lead
        }

        let body: (any SQLConnection) throws -> Void
        var error: (any Error)?
        var wakeup = Wakeup.done
        private let semaphore = DispatchSemaphore(value: 0)

        init(_ body: @escaping (any SQLConnection) throws -> Void) { self.body = body }

        func wake(_ reason: Wakeup) {
            wakeup = reason
            semaphore.signal()
        }

        func wait() -> Wakeup {
            semaphore.wait()
            return wakeup
        }
    }

    private struct State {
        var queue: [Job] = []
        /// A leader is running a batch or handing over; new jobs just queue.
        var hasLeader = false
    }

    private let database: any SQLDatabase
    private let maximumBatch: Int
    private let state = Mutex(State())
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

    /// Transactions committed, and pieces they carried, since start (for tests and metrics).
    public var statistics: (transactions: Int, pieces: Int) {
        (batches.load(ordering: .relaxed), jobs.load(ordering: .relaxed))
    }

    /// Callers queued behind the batch now running (for tests and metrics).
    public var waiting: Int { state.withLock { $0.queue.count } }

    /// Runs `body` in a write transaction, possibly shared with other callers' bodies, and
    /// returns once that transaction has committed.
    /// - Throws: what `body` throws (from its own transaction), or the database's error.
    @discardableResult
    public func run<T>(_ body: @escaping (any SQLConnection) throws -> T) throws -> T {
        var output: T?
        let job = Job { connection in output = try body(connection) }
        let isLeader = state.withLock { state in
            state.queue.append(job)
            if state.hasLeader { return false }
            state.hasLeader = true
            return true
        }
        if isLeader || job.wait() == .lead {
            lead()
        }
        if let error = job.error { throw error }
        guard let output else { preconditionFailure("GroupCommit: a job finished without a result or an error") }
        return output
    }

    /// Runs one batch (the leader's own job is the first in the queue), then hands the
    /// lead to the next queued job, if any, so no thread serves others indefinitely.
    private func lead() {
        let batch = state.withLock { state in
            let count = min(maximumBatch, state.queue.count)
            let batch = Array(state.queue.prefix(count))
            state.queue.removeFirst(count)
            return batch
        }
        execute(batch)
        let next: Job? = state.withLock { state in
            guard let first = state.queue.first else {
                state.hasLeader = false
                return nil
            }
            return first
        }
        // The leader's own job is in `batch`; wake everyone else there, then the next leader.
        for job in batch.dropFirst() { job.wake(.done) }
        next?.wake(.lead)
    }

    private func execute(_ batch: [Job]) {
        batches.add(1, ordering: .relaxed)
        jobs.add(batch.count, ordering: .relaxed)
        do {
            try database.transactionBlocking { connection in
                for job in batch { try job.body(connection) }
            }
            return
        } catch {
            guard batch.count > 1 else {
                batch[0].error = error
                return
            }
        }
        // Someone's piece failed and rolled the batch back: run each alone, so every caller
        // gets the outcome of its own work.
        batches.add(batch.count, ordering: .relaxed)
        for job in batch {
            do {
                try database.transactionBlocking { connection in try job.body(connection) }
                job.error = nil
            } catch {
                job.error = error
            }
        }
    }
}
