import Dispatch
import Foundation

/// A long-running part of Gatehouse (API server, worker, playout, monitor): it runs
/// until its task is cancelled, then stops cleanly.
public protocol GatehouseService: Sendable {
    var name: String { get }
    func run() async throws
}

/// Runs services together and turns SIGTERM/SIGINT into a graceful shutdown: every
/// service's task is cancelled, and the process gets `gracePeriodSeconds` to finish; after
/// that, or at a SIGTERM/SIGINT during the shutdown, it exits at once (status 1) so a stuck
/// service can never keep it alive. When one service fails or ends, the others are stopped
/// too, under the same bound (a half-running stack is worse than a restart by the
/// supervisor). It owns SIGTERM and SIGINT while `run` runs, and a later runner in the
/// same process owns them again.
public struct ServiceRunner: Sendable {
    public var services: [any GatehouseService]
    public var logger: Logger
    /// Default 30 s: the HTTP server's own grace (5 s) plus a database's busy timeout for
    /// writes still committing, plus the worker's batch.
    public var gracePeriodSeconds: Double

    public init(services: [any GatehouseService], logger: Logger, gracePeriodSeconds: Double = 30) {
        self.services = services
        self.logger = logger
        self.gracePeriodSeconds = gracePeriodSeconds
    }

    public func run() async throws {
        let services = self.services
        let logger = self.logger
        let grace = gracePeriodSeconds
        let signals = SignalWaiter(logger: logger)
        signals.listen()
        // The graceful stop is bounded: past the grace period, exit anyway. Armed when the
        // shutdown begins, whatever began it; disarmed when every service has stopped.
        let watchdog = DispatchWorkItem {
            logger.error("service.shutdown_timeout", ["grace_seconds": String(grace)])
            _exit(1)
        }
        defer {
            watchdog.cancel()
            signals.stopListening()
        }
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
                        logger.error("service.failed", ["service": service.name, "error": String(describing: error)])
                        throw error
                    }
                }
            }
            group.addTask {
                if let signal = await signals.next() {
                    logger.notice("service.shutdown_requested", ["signal": signal])
                }
                throw CancellationError()
            }
            // The first task to end (a signal, or a service that failed or returned) stops the rest.
            var failure: (any Error)?
            do {
                try await group.next()
            } catch {
                failure = error
            }
            signals.shutdownBegan()
            DispatchQueue.global().asyncAfter(deadline: .now() + grace, execute: watchdog)
            group.cancelAll()
            if let failure, !(failure is CancellationError) { throw failure }
        }
    }
}

/// Owns SIGTERM and SIGINT while a `ServiceRunner` runs: the first signal ends `next()`;
/// a signal once the shutdown has begun ends the process at once.
/// `@unchecked Sendable`: every stored property is read and written under `lock`
/// (Dispatch signal sources are not `Sendable`, so `Mutex` cannot hold them).
private final class SignalWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private let logger: Logger
    private var sources: [any DispatchSourceSignal] = []
    private var continuation: CheckedContinuation<String?, Never>?
    private var received: String?
    private var isWaitCancelled = false
    private var isShuttingDown = false
    private static let signals = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")]

    init(logger: Logger) { self.logger = logger }

    /// Takes the signals from their default action (ending the process) to `received`.
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

    /// From now on a signal means: do not wait for the graceful stop.
    func shutdownBegan() { lock.withLock { isShuttingDown = true } }

    private func receive(_ name: String) {
        let waiting: CheckedContinuation<String?, Never>?? = lock.withLock {
            if isShuttingDown || received != nil { return .none }
            received = name
            isShuttingDown = true
            defer { continuation = nil }
            return .some(continuation)
        }
        guard let waiting else {
            // The operator (or the supervisor) does not want to wait for the graceful stop.
            logger.warning("service.exit_now", ["signal": name])
            _exit(1)
        }
        waiting?.resume(returning: name)
    }
}
