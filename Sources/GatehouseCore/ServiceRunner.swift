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
/// that, or at a second SIGTERM/SIGINT, it exits at once (status 1) so a stuck service can
/// never keep it alive. When one service fails, the others are stopped too (a half-running
/// stack is worse than a restart by the supervisor).
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
            let grace = gracePeriodSeconds
            group.addTask {
                let signal = await Self.waitForTerminationSignal(logger: logger)
                logger.notice("service.shutdown_requested", ["signal": signal])
                if signal != "cancelled" {
                    // The graceful stop is bounded: past the grace period, exit anyway.
                    DispatchQueue.global().asyncAfter(deadline: .now() + grace) {
                        logger.error("service.shutdown_timeout", ["grace_seconds": String(grace)])
                        _exit(1)
                    }
                }
                throw CancellationError()
            }
            do {
                // The first task to end (a signal, or a failing service) stops the rest.
                try await group.next()
                group.cancelAll()
            } catch {
                group.cancelAll()
                if !(error is CancellationError) { throw error }
            }
        }
    }

    /// Suspends until SIGTERM or SIGINT arrives (returns its name) or the task is cancelled.
    /// A second signal after the first ends the process at once.
    static func waitForTerminationSignal(logger: Logger) async -> String {
        let waiter = SignalWaiter(logger: logger)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
                waiter.start(continuation)
            }
        } onCancel: {
            waiter.finish("cancelled")
        }
    }
}

/// Keeps the signal sources alive and resumes the waiter exactly once.
/// `@unchecked Sendable`: every stored property is read and written under `lock`
/// (Dispatch signal sources are not `Sendable`, so `Mutex` cannot hold them).
private final class SignalWaiter: @unchecked Sendable {
    private let lock = NSLock()
    private let logger: Logger
    private var continuation: CheckedContinuation<String, Never>?
    private var sources: [any DispatchSourceSignal] = []
    private var finished: String?

    init(logger: Logger) { self.logger = logger }

    func start(_ continuation: CheckedContinuation<String, Never>) {
        let queue = DispatchQueue(label: "gatehouse.signals")
        var made: [any DispatchSourceSignal] = []
        for (number, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { [self] in finish(name) }
            source.resume()
            made.append(source)
        }
        lock.lock()
        sources = made
        let already = finished
        if already == nil { self.continuation = continuation }
        lock.unlock()
        if let already { continuation.resume(returning: already) }
    }

    func finish(_ name: String) {
        lock.lock()
        guard finished == nil else {
            let first = finished
            lock.unlock()
            if first != "cancelled" && name != "cancelled" {
                // A second signal: the operator does not want to wait for the graceful stop.
                logger.warning("service.exit_now", ["signal": name])
                _exit(1)
            }
            return
        }
        finished = name
        // Keep listening after a signal (a second one exits at once); not after a cancel.
        if name == "cancelled" { for source in sources { source.cancel() } }
        let waiting = continuation
        continuation = nil
        lock.unlock()
        waiting?.resume(returning: name)
    }
}
