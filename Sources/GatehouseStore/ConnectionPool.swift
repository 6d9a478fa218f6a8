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
        case handOver(CheckedContinuation<Lease, any Error>)
        case drop
        case keep
    }

    private struct State {
        var idle: [PoolSlot<Connection>] = []
        var open = 0
        var waiters: [CheckedContinuation<Lease, any Error>] = []
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
                state.waiters.append(continuation)
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
        let waiter: CheckedContinuation<Lease, any Error>? = state.withLock { state in
            state.open -= 1
            guard !state.waiters.isEmpty else { return nil }
            state.open += 1
            return state.waiters.removeFirst()
        }
        waiter?.resume(returning: .create)
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
        case .handOver(let waiter): waiter.resume(returning: .ready(slot))
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
        for waiter in waiters { waiter.resume(throwing: Self.closedError) }
        for slot in idle {
            _ = try? await runBlocking(on: slot.queue) { slot.connection.close() }
        }
    }

    private static var closedError: GatehouseError {
        GatehouseError(.unavailable, "the database is closed")
    }
}
