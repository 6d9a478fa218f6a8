import Dispatch
import Synchronization

/// An answer that a handler gives later, from another thread: a write handler queues its
/// work (a group commit) and returns `HTTPResponse.deferred(_:)`; the server parks the
/// connection without holding any thread, and answers when `resolve` is called.
///
/// Resolve exactly once: later calls are ignored. A deferred response never resolved leaves
/// its connection parked, and the server's shutdown waits for it.
public final class DeferredResponse: Sendable {
    private enum State {
        case pending((@Sendable (HTTPResponse) -> Void)?)
        case resolved(HTTPResponse)
        case delivered
    }

    private let state = Mutex(State.pending(nil))

    public init() {}

    /// Delivers `response` to the waiting connection (or keeps it until the server asks).
    public func resolve(_ response: HTTPResponse) {
        let deliver = state.withLock { state -> (@Sendable (HTTPResponse) -> Void)? in
            switch state {
            case .pending(let deliver?):
                state = .delivered
                return deliver
            case .pending(nil):
                state = .resolved(response)
                return nil
            case .resolved, .delivered:
                return nil
            }
        }
        deliver?(response)
    }

    /// Calls `deliver` with the response once it is resolved: now (on this thread) if it
    /// already is, else on the thread that resolves it. At most once per object: the server
    /// calls it on what the handler returned, so a wrapper that wants to see the answer (to
    /// count it) calls it and returns a new `DeferredResponse` that it resolves in turn.
    public func whenResolved(_ deliver: @escaping @Sendable (HTTPResponse) -> Void) {
        let ready = state.withLock { state -> HTTPResponse? in
            switch state {
            case .pending(nil):
                state = .pending(deliver)
                return nil
            case .resolved(let response):
                state = .delivered
                return response
            case .pending(.some), .delivered:
                preconditionFailure("DeferredResponse: whenResolved was called twice")
            }
        }
        if let ready { deliver(ready) }
    }

    /// Blocks until resolved, for callers without a server (a router called directly).
    public func wait() -> HTTPResponse {
        let done = DispatchSemaphore(value: 0)
        let box = Mutex<HTTPResponse?>(nil)
        whenResolved { response in
            box.withLock { $0 = response }
            done.signal()
        }
        done.wait()
        return box.withLock { $0! }
    }
}

extension DeferredResponse: Equatable {
    public static func == (lhs: DeferredResponse, rhs: DeferredResponse) -> Bool { lhs === rhs }
}
