import Dispatch
import Foundation

/// A long-running part of Gatehouse (API server, worker, playout, monitor): it runs
/// until its task is cancelled, then stops cleanly.
public protocol GatehouseService: Sendable {
    var name: String { get }
    func run() async throws
}

/// Runs services together and turns SIGTERM/SIGINT into a graceful shutdown: every
/// service's task is cancelled, then the cleanup runs, and the process gets
/// `gracePeriodSeconds` for both; after that, or at a second SIGTERM/SIGINT, it exits at once
/// (status 1) so a stuck service can never keep it alive. When one service fails or ends,
/// the others are stopped too, under the same bound (a half-running stack is worse than a
/// restart by the supervisor). It owns SIGTERM and SIGINT while `run` runs, and a later
/// runner in the same process owns them again.
public struct ServiceRunner: Sendable {
    public var services: [any GatehouseService]
    public var logger: Logger
    /// Default 30 s: the HTTP server's own grace (5 s) plus a database's busy timeout for
    /// writes still committing, plus the worker's batch.
    public var gracePeriodSeconds: Double
    /// Ends the process when the stop is over its bound or a second signal says not to
    /// wait (after the runner has logged why). Default `_exit(1)`; tests record instead.
    public var exitNow: @Sendable () -> Void = { _exit(1) }

    public init(services: [any GatehouseService], logger: Logger, gracePeriodSeconds: Double = 30) {
        self.services = services
        self.logger = logger
        self.gracePeriodSeconds = gracePeriodSeconds
    }

    /// Runs the services until a signal, or until one of them fails or returns; then stops
    /// them all and runs `cleanup` (flush producers, close the database), within the bound.
    /// - Throws: the error of the service that failed first.
    public func run(cleanup: @Sendable () async -> Void = {}) async throws {
        let services = self.services
        let logger = self.logger
        let grace = gracePeriodSeconds
        let exitNow = self.exitNow
        let signals = SignalWaiter(logger: logger, exitNow: exitNow)
        signals.listen()
        // The graceful stop is bounded: past the grace period, exit anyway. Armed when the
        // shutdown begins, whatever began it; disarmed when the cleanup is done.
        let watchdog = DispatchWorkItem {
            logger.error("service.shutdown_timeout", ["grace_seconds": String(grace)])
            exitNow()
        }
        defer {
            watchdog.cancel()
            signals.stopListening()
        }
        var failure: (any Error)?
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for service in services {
                    group.addTask {
                        logger.info("service.starting", ["service": service.name])
                        do {
                            try await service.run()
                            logger.info("service.stopped", ["service": service.name])
                        } catch is CancellationError {
                            logger.info("service.stopped", ["service": service.name])
                        } catch {
                            logger.error(
                                "service.failed", ["service": service.name, "error": String(describing: error)])
                            throw error
                        }
                    }
                }
                group.addTask {
                    _ = await signals.next()
                    throw CancellationError()
                }
                // The first task to end (a signal, or a service that failed or returned)
                // stops the rest.
                var first: (any Error)?
                do {
                    try await group.next()
                } catch {
                    first = error
                }
                DispatchQueue.global().asyncAfter(deadline: .now() + grace, execute: watchdog)
                group.cancelAll()
                if let first, !(first is CancellationError) { throw first }
            }
        } catch {
            failure = error
        }
        await cleanup()
        if let failure { throw failure }
    }
}

/// Owns SIGTERM and SIGINT while a `ServiceRunner` runs: the first signal ends `next()`
/// (or, once the shutdown has begun for another reason, is noted); a second one ends the
/// process at once.
/// `@unchecked Sendable`: every stored property is read and written under `lock`
/// (Dispatch signal sources are not `Sendable`, so `Mutex` cannot hold them).
private final class SignalWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private let logger: Logger
    private let exitNow: @Sendable () -> Void
    private var sources: [any DispatchSourceSignal] = []
    private var continuation: CheckedContinuation<String?, Never>?
    private var received: String?
    private var isWaitCancelled = false
    private static let signals = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")]

    init(logger: Logger, exitNow: @escaping @Sendable () -> Void) {
        self.logger = logger
        self.exitNow = exitNow
    }

    /// Takes the signals from their default action (ending the process) to `receive`.
    func listen() {
        let queue = DispatchQueue(label: "gatehouse.signals")
        var made: [any DispatchSourceSignal] = []
        for (number, name) in Self.signals {
            // Not ended by the signal while the source registers. libdispatch then installs
            // a handler of its own, once per process, that routes the signal to its sources;
            // a later runner in the same process (tests) must not replace it.
            var current = sigaction()
            sigaction(number, nil, &current)
            if current.__sigaction_handler.sa_handler == nil { signal(number, SIG_IGN) }  // nil is SIG_DFL
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [self] in receive(name) }
            source.resume()
            made.append(source)
        }
        lock.withLock { sources = made }
    }

    /// Stops listening. The signals stay with libdispatch's handler, which holds them for
    /// the next source: they no longer end the process, which returns from `run` to exit.
    func stopListening() {
        let stopped = lock.withLock {
            defer { sources = [] }
            return sources
        }
        for source in stopped { source.cancel() }
    }

    /// The first signal's name, or nil when the task is cancelled first.
    func next() async -> String? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
                let now: String?? = lock.withLock {
                    if let received { return .some(received) }
                    if isWaitCancelled { return .some(nil) }
                    self.continuation = continuation
                    return .none
                }
                if let now { continuation.resume(returning: now) }
            }
        } onCancel: {
            let waiting = lock.withLock {
                isWaitCancelled = true
                defer { continuation = nil }
                return continuation
            }
            waiting?.resume(returning: nil)
        }
    }

    private func receive(_ name: String) {
        let waiting: CheckedContinuation<String?, Never>?? = lock.withLock {
            if received != nil { return .none }
            received = name
            defer { continuation = nil }
            return .some(continuation)
        }
        guard let waiting else {
            // The operator (or the supervisor) does not want to wait for the graceful stop.
            logger.warning("service.exit_now", ["signal": name])
            exitNow()
            return
        }
        logger.notice("service.shutdown_requested", ["signal": name])
        waiting?.resume(returning: name)
    }
}
