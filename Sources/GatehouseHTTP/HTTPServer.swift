import Foundation
import GatehouseCore
import Synchronization

/// An HTTP/1.1 server over libmicrohttpd.
///
/// libmicrohttpd runs a pool of `threadCount` worker threads, each with its own epoll
/// loop, and calls the handler on them. The handler is synchronous on purpose: these
/// are real OS threads outside Swift's cooperative pool, so a handler may block on the
/// database or the bus without starving async code, and no bridging (a semaphore
/// waiting on a `Task`) is needed. A handler that would wait long (a write, for its group
/// commit) returns `HTTPResponse.deferred(_:)` instead: the connection is suspended, no
/// thread waits, and the answer goes out when the `DeferredResponse` is resolved.
///
/// Every response carries `X-Request-Id`; bodies over `maximumBodySize` get a 413
/// without being buffered; each request gets one access-log line (never headers,
/// query strings or bodies).
///
/// ```swift
/// let server = HTTPServer(configuration: config, logger: logger, handler: router.handler)
/// try server.start()          // or `try await server.run()` in a service group
/// print(server.boundAddress!) // the real port when configured as 0
/// server.shutdown()
/// ```
public final class HTTPServer: Sendable {
    private enum Phase {
        case idle
        case running(MHDDaemon, HTTPServerAddress)
        case stopping
        case stopped
    }

    private struct State {
        var phase = Phase.idle
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    public let configuration: HTTPServerConfiguration
    private let context: ServerContext
    private let state = Mutex(State())

    /// Prepares a server; nothing is opened until `start()` or `run()`.
    /// - Parameter handler: runs on libmicrohttpd's threads for every request whose body
    ///   is within the limit; usually `Router.handler`.
    public init(
        configuration: HTTPServerConfiguration, logger: Logger,
        handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
    ) {
        self.configuration = configuration
        self.context = ServerContext(configuration: configuration, logger: logger, handler: handler)
    }

    /// Opens the listening socket and starts the worker threads.
    /// - Throws: `GatehouseError.configuration` for invalid settings (naming the setting),
    ///   `.io` when libmicrohttpd cannot start (address in use, bad TLS key), `.invalidInput`
    ///   when the server was already started.
    public func start() throws(GatehouseError) {
        try state.withLock { (state: inout State) throws(GatehouseError) in
            guard case .idle = state.phase else {
                throw GatehouseError(
                    .invalidInput,
                    "the HTTP server was already started (a server starts once; make a new one to restart)")
            }
            let daemon = try MHDDaemon.make(context: context)
            let bound = HTTPServerAddress(host: configuration.address.host, port: daemon.port)
            state.phase = .running(daemon, bound)
            context.logger.notice(
                "http.listening",
                [
                    "http.address": bound.description, "http.tls": configuration.tls == nil ? "false" : "true",
                    "http.threads": String(configuration.threadCount),
                ])
        }
    }

    /// The address the server listens on, with the real port; nil unless running.
    public var boundAddress: HTTPServerAddress? {
        state.withLock { state in
            if case .running(_, let address) = state.phase { return address }
            return nil
        }
    }

    /// Whether the server is accepting requests.
    public var isRunning: Bool { boundAddress != nil }

    /// Stops gracefully: stops accepting, lets requests in flight finish (up to
    /// `shutdownGracePeriodSeconds`, answering them with `Connection: close`), then closes
    /// every connection and joins the threads. Blocks until done; idempotent.
    public func shutdown() {
        let daemon: MHDDaemon? = state.withLock { state in
            switch state.phase {
            case .running(let daemon, _):
                state.phase = .stopping
                return daemon
            case .idle:
                state.phase = .stopped
                return nil
            case .stopping, .stopped:
                return nil
            }
        }
        if let daemon {
            context.isDraining.store(true, ordering: .relaxed)
            daemon.quiesce()
            let deadline = ContinuousClock.now + .milliseconds(Int(configuration.shutdownGracePeriodSeconds * 1000))
            while context.requestsInFlight.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline {
                usleep(5_000)
            }
            let abandoned = context.requestsInFlight.load(ordering: .relaxed)
            daemon.stop()
            context.logger.notice("http.stopped", ["http.abandoned_requests": String(abandoned)])
        }
        let waiters = state.withLock { state in
            if case .stopping = state.phase { state.phase = .stopped }
            guard case .stopped = state.phase else { return [CheckedContinuation<Void, Never>]() }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Starts the server and serves until the task is cancelled (or `shutdown()` is
    /// called), then shuts down gracefully; the service-lifecycle shape.
    /// - Throws: what `start()` throws.
    public func run() async throws {
        try start()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let isStopped = state.withLock { state in
                    if case .stopped = state.phase { return true }
                    state.waiters.append(continuation)
                    return false
                }
                if isStopped { continuation.resume() }
            }
        } onCancel: {
            // shutdown() blocks for up to the grace period: keep it off the cooperative pool.
            Thread.detachNewThread { self.shutdown() }
        }
    }

    deinit {
        // The daemon must stop before the context its callbacks use is released;
        // MHDDaemon.deinit would do it too, this makes the order explicit.
        state.withLock { state in
            if case .running(let daemon, _) = state.phase { daemon.stop() }
        }
    }
}
