import Dispatch
import Synchronization

/// Runs async work from a synchronous libmicrohttpd callback.
enum AsyncBridge {
    /// Where the task leaves its result for the blocked thread.
    private final class Outcome<T: Sendable>: Sendable {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
    }

    /// Runs `operation` in a new `Task` and blocks the calling thread until it finishes.
    /// - Important: call only from threads outside Swift's cooperative pool (libmicrohttpd's
    ///   workers); blocking a pool thread this way can starve the very task it waits for.
    static func wait<T: Sendable>(_ operation: @escaping @Sendable () async throws -> T) throws -> T {
        let outcome = Outcome<T>()
        Task {
            let result: Result<T, any Error>
            do {
                result = .success(try await operation())
            } catch {
                result = .failure(error)
            }
            outcome.result.withLock { $0 = result }
            outcome.done.signal()
        }
        outcome.done.wait()
        return try outcome.result.withLock { $0! }.get()
    }
}
