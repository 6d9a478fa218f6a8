import Dispatch
import GatehouseCore
import Synchronization

/// What the pool needs from a driver connection.
protocol PooledConnection: AnyObject, Sendable {
    /// Frees the C handle now (idempotent; `deinit` calls it too). Blocking.
    func close()
}

/// A connection and the serial queue (its own thread) it runs on.
struct PoolSlot<Connection: PooledConnection>: Sendable {
    let connection: Connection
    let queue: DispatchQueue
}

/// Runs blocking work on `queue` and suspends the caller until it is done, so database C
/// calls never occupy a thread of the cooperative pool.
func runBlocking<T: Sendable>(on queue: DispatchQueue, _ work: @escaping @Sendable () throws -> T) async throws
    -> T
{
    try await withCheckedThrowingContinuation { continuation in
        queue.async { continuation.resume(with: Result { try work() }) }
    }
}

/// Lends up to `maxSize` connections, one borrower at a time each, opening them on demand
/// and queueing borrowers (first come, first served) when all are busy.
///
/// State changes happen under a `Mutex`; continuations are resumed after the lock is
/// released. Waiting borrowers are not cancellable: a wait ends when a connection comes
/// back or the pool closes.
final class ConnectionPool<Connection: PooledConnection>: Sendable {
    private enum Lease: Sendable {
        case ready(PoolSlot<Connection>)
        case create
    }

    private enum AcquireAction {
        case resume(Lease)
        case fail
        case wait
    }

    private enum ReleaseAction {
        case handOver(Waiter)
        case drop
        case keep
    }

    /// A borrower waiting for a connection: a suspended task, or a thread blocked in
    /// `withConnectionBlocking`.
    private enum Waiter: Sendable {
        case task(CheckedContinuation<Lease, any Error>)
        case thread(BlockedBorrower)

        func resume(with result: Result<Lease, any Error>) {
            switch self {
            case .task(let continuation): continuation.resume(with: result)
            case .thread(let borrower): borrower.resume(with: result)
            }
        }
    }

    /// A blocked thread's wait: the result is written before the semaphore is signalled
    /// and read only after the wait returns, so the semaphore orders the two accesses
    /// (hence `@unchecked Sendable`).
    private final class BlockedBorrower: @unchecked Sendable {
        private let semaphore = DispatchSemaphore(value: 0)
        private var result: Result<Lease, any Error>?
        func resume(with result: Result<Lease, any Error>) {
            self.result = result
            semaphore.signal()
        }
        func wait() throws -> Lease {
            semaphore.wait()
            return try result!.get()
        }
    }

    private struct State {
        var idle: [PoolSlot<Connection>] = []
        var open = 0
        var waiters: [Waiter] = []
        var isClosed = false
    }

    let name: String
    let maxSize: Int
    private let state: Mutex<State>
    private let factory: @Sendable () throws -> Connection
    private let serial = Atomic<Int>(0)

    /// - Parameters:
    ///   - initial: connections already open (the SQLite writer is opened eagerly so the
    ///     database is in WAL mode before any reader opens).
    ///   - factory: opens one connection; blocking, runs on the new connection's queue.
    init(
        name: String, maxSize: Int, initial: [PoolSlot<Connection>] = [],
        factory: @escaping @Sendable () throws -> Connection
    ) {
        precondition(maxSize >= 1 && initial.count <= maxSize)
        self.name = name
        self.maxSize = maxSize
        self.factory = factory
        self.state = Mutex(State(idle: initial, open: initial.count))
    }

    /// A new serial queue for one connection; it targets the overcommit root queue, so a
    /// blocked call gets its own thread instead of starving other work.
    func makeQueue() -> DispatchQueue {
        let n = serial.add(1, ordering: .relaxed).newValue
        return DispatchQueue(label: "gatehouse.store.\(name).\(n)")
    }

    /// Borrows a connection, runs `body` on the connection's queue, returns the connection.
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (Connection) throws -> T) async throws -> T {
        let slot = try await acquire()
        do {
            let result = try await runBlocking(on: slot.queue) { try body(slot.connection) }
            release(slot)
            return result
        } catch {
            release(slot)
            throw error
        }
    }

    private func acquire() async throws -> PoolSlot<Connection> {
        let lease: Lease = try await withCheckedThrowingContinuation { continuation in
            let action: AcquireAction = state.withLock { state in
                if state.isClosed { return .fail }
                if let slot = state.idle.popLast() { return .resume(.ready(slot)) }
                if state.open < maxSize {
                    state.open += 1
                    return .resume(.create)
                }
                state.waiters.append(.task(continuation))
                return .wait
            }
            switch action {
            case .resume(let lease): continuation.resume(returning: lease)
            case .fail: continuation.resume(throwing: Self.closedError)
            case .wait: break
            }
        }
        switch lease {
        case .ready(let slot):
            return slot
        case .create:
            let queue = makeQueue()
            do {
                let factory = self.factory
                let connection = try await runBlocking(on: queue) { try factory() }
                return PoolSlot(connection: connection, queue: queue)
            } catch {
                creationFailed()
                throw error
            }
        }
    }

    /// A slot we reserved could not be opened: free it, and let the next waiter try.
    private func creationFailed() {
        let waiter: Waiter? = state.withLock { state in
            state.open -= 1
            guard !state.waiters.isEmpty else { return nil }
            state.open += 1
            return state.waiters.removeFirst()
        }
        waiter?.resume(with: .success(.create))
    }

    /// Borrows a connection and runs `body` on the calling thread, under the connection's
    /// queue (`sync` on an idle serial queue runs in place: no thread switch). For callers
    /// on threads of their own (libmicrohttpd's workers), never the cooperative pool: it
    /// blocks while all connections are busy.
    func withConnectionBlocking<T>(_ body: (Connection) throws -> T) throws -> T {
        let slot = try acquireBlocking()
        defer { release(slot) }
        return try slot.queue.sync { try body(slot.connection) }
    }

    private func acquireBlocking() throws -> PoolSlot<Connection> {
        let borrower = BlockedBorrower()
        let action: AcquireAction = state.withLock { state in
            if state.isClosed { return .fail }
            if let slot = state.idle.popLast() { return .resume(.ready(slot)) }
            if state.open < maxSize {
                state.open += 1
                return .resume(.create)
            }
            state.waiters.append(.thread(borrower))
            return .wait
        }
        let lease: Lease
        switch action {
        case .resume(let ready): lease = ready
        case .fail: throw Self.closedError
        case .wait: lease = try borrower.wait()
        }
        switch lease {
        case .ready(let slot):
            return slot
        case .create:
            let queue = makeQueue()
            do {
                let connection = try queue.sync { try factory() }
                return PoolSlot(connection: connection, queue: queue)
            } catch {
                creationFailed()
                throw error
            }
        }
    }

    private func release(_ slot: PoolSlot<Connection>) {
        let action: ReleaseAction = state.withLock { state in
            if state.isClosed {
                state.open -= 1
                return .drop
            }
            if !state.waiters.isEmpty { return .handOver(state.waiters.removeFirst()) }
            state.idle.append(slot)
            return .keep
        }
        switch action {
        case .handOver(let waiter): waiter.resume(with: .success(.ready(slot)))
        case .drop: slot.queue.async { slot.connection.close() }
        case .keep: break
        }
    }

    /// Refuses new borrowers, fails the waiting ones, and closes idle connections (each on
    /// its own queue, waiting until it is closed).
    func close() async {
        let (idle, waiters) = state.withLock { state in
            state.isClosed = true
            let idle = state.idle
            let waiters = state.waiters
            state.idle = []
            state.waiters = []
            state.open -= idle.count
            return (idle, waiters)
        }
        for waiter in waiters { waiter.resume(with: .failure(Self.closedError)) }
        for slot in idle {
            _ = try? await runBlocking(on: slot.queue) { slot.connection.close() }
        }
    }

    private static var closedError: GatehouseError {
        GatehouseError(.unavailable, "the database is closed")
    }
}
