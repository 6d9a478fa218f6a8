import Foundation
import GatehouseCore
import Synchronization

/// Copies the WAL back into the database file on a thread of its own, every
/// `interval`, with `PRAGMA wal_checkpoint(PASSIVE)` (which never blocks writers or readers).
///
/// SQLite's automatic checkpoint runs inside the commit that crosses the threshold: that
/// commit, and every writer queued behind it, waits while megabytes of pages are copied
/// and synced, which showed as tens of milliseconds on the API's p99. Done here, the
/// commit path never checkpoints (the writer keeps a far threshold as a safety net), and
/// hot pages still get copied once per round however often they changed.
final class SQLiteCheckpointer: Sendable {
    private let isStopping = Atomic<Bool>(false)
    private let stopped = DispatchSemaphore(value: 0)
    private let wake = DispatchSemaphore(value: 0)

    /// Opens its own connection to `path` on a new thread and checkpoints until `stop()`.
    init(path: String, interval: Duration, busyTimeoutMilliseconds: Int, logger: Logger) {
        let milliseconds = Int(interval.components.seconds * 1000 + interval.components.attoseconds / 1_000_000_000_000_000)
        Thread.detachNewThread { [self] in
            defer { stopped.signal() }
            let connection: SQLiteConnection
            do {
                connection = try SQLiteConnection.make(
                    path: path, isWriter: false, busyTimeoutMilliseconds: busyTimeoutMilliseconds,
                    synchronous: .normal, cacheCapacity: 4, isCheckpointer: true)
            } catch {
                logger.error("sqlite checkpointer cannot open the database", ["error": String(describing: error)])
                return
            }
            defer { connection.close() }
            var lastFailure: String?
            while !isStopping.load(ordering: .relaxed) {
                _ = wake.wait(timeout: .now() + .milliseconds(max(1, milliseconds)))
                do {
                    _ = try connection.query("PRAGMA wal_checkpoint(PASSIVE)", [])
                    lastFailure = nil
                } catch {
                    // Logged once per kind of failure; the writer's own threshold still bounds the WAL.
                    let description = String(describing: error)
                    if description != lastFailure {
                        logger.warning("sqlite checkpoint failed", ["error": description])
                        lastFailure = description
                    }
                }
            }
        }
    }

    /// Ends the loop and waits for the thread to close its connection. Blocking; idempotent.
    func stop() {
        guard !isStopping.exchange(true, ordering: .relaxed) else { return }
        wake.signal()
        stopped.wait()
    }
}
