import CMicroHTTPD
import Foundation
import GatehouseCore
import Synchronization

/// State every callback of one daemon shares. MHD receives it unretained (`cls`); the
/// `MHDDaemon` that owns the daemon also holds it strongly and stops the daemon in
/// `deinit` before this object can be released, so no callback ever sees a dangling pointer.
final class ServerContext: Sendable {
    let configuration: HTTPServerConfiguration
    let logger: Logger
    let handler: @Sendable (HTTPRequest) -> HTTPResponse
    /// Requests whose request line has arrived and whose completion has not been reported.
    let requestsInFlight = Atomic<Int>(0)
    /// Set by `shutdown()`: responses then carry `Connection: close`.
    let isDraining = Atomic<Bool>(false)
    /// The last message libmicrohttpd logged, to explain a failed start.
    let lastDaemonMessage = Mutex<String?>(nil)
    /// Requests parked until their deferred answer comes (see `Parking`).
    let parking = Mutex(Parking())

    init(
        configuration: HTTPServerConfiguration, logger: Logger,
        handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse
    ) {
        self.configuration = configuration
        self.logger = logger
        self.handler = handler
    }
}

/// The parked requests of a daemon. MHD must not be stopped while a connection is
/// suspended (it aborts the process), and a connection resumed just before the stop would
/// lose its answer; `MHDDaemon.stop` closes parking first, so no request parks after its
/// count was read, then waits for both counts.
struct Parking {
    /// Suspended, answer not yet in.
    var suspended = 0
    /// Parked and not yet reported complete by MHD (answer not yet sent).
    var unfinished = 0
    /// Set by `stop`: requests that complete from then on get a 503 without running, and
    /// the deferred answer of one whose handler was running is waited for on MHD's thread.
    var isClosed = false
}

/// One request's state between MHD callbacks, stored in MHD's `con_cls`: retained in the
/// URI callback, released in the request-completed callback. MHD serves a connection on
/// one thread at a time, so only that thread touches it and it needs no lock.
final class RequestState {
    let target: String
    let started = ContinuousClock.now
    var isStarted = false
    var method = ""
    var requestID = ""
    var remoteAddress: String?
    var body: [UInt8] = []
    var bodyBytesReceived = 0
    var isTooLarge = false
    var status = 0
    var responseBytes = 0
    var accessLog: [String: String] = [:]
    /// The deferred answer of a parked request, queued when MHD calls back after the
    /// connection is resumed. Written by the answering thread before it resumes the
    /// connection and read by MHD's thread after the resume (MHD's lock orders the two).
    var deferredAnswer: HTTPResponse?
    /// Whether the request was parked (counted in `Parking.unfinished` until it completes).
    var wasParked = false

    init(target: String) { self.target = target }

    /// The path without the query string (which may carry secrets), for the access log.
    var pathForLog: String {
        let path = target.utf8.firstIndex(of: UInt8(ascii: "?")).map { target[..<$0] } ?? target[...]
        return path.utf8.count > 512 ? String(path.prefix(512)) + "..." : String(path)
    }
}

/// The libmicrohttpd daemon handle. `make` starts it, `deinit` stops it; the quiesced
/// listen socket is closed only after `MHD_stop_daemon`, as MHD requires.
final class MHDDaemon: Sendable {
    // @unchecked: the pointer is only passed to MHD_quiesce_daemon and MHD_stop_daemon,
    // which MHD allows from any thread but not concurrently: the mutex serialises them.
    private struct Handle: @unchecked Sendable {
        var daemon: OpaquePointer?
        var quiescedSocket: Int32 = -1
    }

    private let handle: Mutex<Handle>
    /// Holds the context alive for as long as the daemon may call back with it.
    let context: ServerContext
    /// The port actually bound (the kernel's choice when configured as 0).
    let port: Int

    static var isTLSSupported: Bool { MHD_is_feature_supported(.FEATURE_TLS) == .YES }

    private init(daemon: OpaquePointer, context: ServerContext, port: Int) {
        self.handle = Mutex(Handle(daemon: daemon))
        self.context = context
        self.port = port
    }

    /// Starts the daemon with its threads listening.
    /// - Throws: `GatehouseError.configuration` for invalid settings, `.io` when MHD cannot
    ///   start (the address is in use, the TLS key does not match), quoting MHD's reason.
    static func make(context: ServerContext) throws(GatehouseError) -> MHDDaemon {
        let configuration = context.configuration
        try configuration.validate()
        let address = configuration.address

        var flags =
            MHD_USE_INTERNAL_POLLING_THREAD.rawValue | MHD_USE_EPOLL.rawValue | MHD_USE_ITC.rawValue
            | MHD_USE_ERROR_LOG.rawValue | MHD_ALLOW_SUSPEND_RESUME.rawValue
        // `[::]` means every address, IPv4 included (dual stack); a specific IPv6 address is IPv6 only.
        if address.isIPv6 { flags |= (address.host == "::" ? MHD_USE_DUAL_STACK : MHD_USE_IPv6).rawValue }
        if configuration.tls != nil { flags |= MHD_USE_TLS.rawValue }

        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { raw in
            if address.isIPv6 {
                let v6 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                v6.pointee.sin6_family = sa_family_t(AF_INET6)
                v6.pointee.sin6_port = in_port_t(UInt16(address.port).bigEndian)
                _ = inet_pton(AF_INET6, address.host, &v6.pointee.sin6_addr)
            } else {
                let v4 = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                v4.pointee.sin_family = sa_family_t(AF_INET)
                v4.pointee.sin_port = in_port_t(UInt16(address.port).bigEndian)
                _ = inet_pton(AF_INET, address.host, &v4.pointee.sin_addr)
            }
        }
        // MHD copies the PEM text into GnuTLS during MHD_start_daemon; these arrays only
        // need to live until it returns.
        var certificate = Array((configuration.tls?.certificatePEM ?? "").utf8CString)
        var key = Array((configuration.tls?.privateKeyPEM ?? "").utf8CString)

        let unmanagedContext = Unmanaged.passUnretained(context).toOpaque()
        let daemon: OpaquePointer? = withUnsafeMutablePointer(to: &storage) { storagePointer in
            certificate.withUnsafeMutableBufferPointer { certificatePointer in
                key.withUnsafeMutableBufferPointer { keyPointer in
                    var options: [MHD_OptionItem] = [
                        MHD_OptionItem(
                            option: .CONNECTION_LIMIT, value: configuration.connectionLimit,
                            ptr_value: nil),
                        MHD_OptionItem(
                            option: .CONNECTION_TIMEOUT,
                            value: configuration.connectionTimeoutSeconds, ptr_value: nil),
                        MHD_OptionItem(
                            option: .SOCK_ADDR, value: 0,
                            ptr_value: UnsafeMutableRawPointer(storagePointer)),
                    ]
                    if configuration.threadCount > 1 {
                        options.append(
                            MHD_OptionItem(
                                option: .THREAD_POOL_SIZE,
                                value: configuration.threadCount, ptr_value: nil))
                    }
                    if configuration.tls != nil {
                        options.append(
                            MHD_OptionItem(
                                option: .HTTPS_MEM_KEY, value: 0,
                                ptr_value: UnsafeMutableRawPointer(keyPointer.baseAddress!)))
                        options.append(
                            MHD_OptionItem(
                                option: .HTTPS_MEM_CERT, value: 0,
                                ptr_value: UnsafeMutableRawPointer(certificatePointer.baseAddress!)))
                    }
                    options.append(MHD_OptionItem(option: .END, value: 0, ptr_value: nil))
                    return options.withUnsafeMutableBufferPointer { optionsPointer in
                        gatehouse_mhd_start(
                            flags, mhdAccessHandler, mhdRequestCompleted, mhdURICallback, mhdLog,
                            unmanagedContext, optionsPointer.baseAddress)
                    }
                }
            }
        }
        // Key material must not linger in memory longer than needed.
        for index in key.indices { key[index] = 0 }
        guard let daemon else {
            let reason = context.lastDaemonMessage.withLock { $0 } ?? "no reason given"
            throw GatehouseError(.io, "cannot start the HTTP server on \(address): \(reason)")
        }
        let port = Int(gatehouse_mhd_bind_port(daemon))
        return MHDDaemon(daemon: daemon, context: context, port: port != 0 ? port : address.port)
    }

    /// Stops accepting connections; requests on open connections continue.
    func quiesce() {
        handle.withLock { handle in
            guard let daemon = handle.daemon, handle.quiescedSocket < 0 else { return }
            handle.quiescedSocket = MHD_quiesce_daemon(daemon)
        }
    }

    /// Closes every connection and joins MHD's threads (waiting for handlers running now,
    /// and for deferred answers still to come).
    func stop() {
        handle.withLock { handle in
            guard let daemon = handle.daemon else { return }
            // No request runs or parks from now on (a late one gets a 503; one whose handler
            // was running waits for its answer on MHD's thread, which MHD_stop_daemon joins).
            // MHD must not stop with a connection suspended: wait for the deferred answers (a
            // group commit, bounded by the database's own timeouts) to resume them all...
            let parked = context.parking.withLock { parking in
                parking.isClosed = true
                return parking.suspended
            }
            context.logger.notice("http.stopping", ["http.suspended_requests": String(parked)])
            var waited = 0
            while context.parking.withLock({ $0.suspended }) > 0 {
                usleep(1000)
                waited += 1
                if waited % 5000 == 0 {
                    context.logger.warning(
                        "http.stop_waiting",
                        ["http.suspended_requests": String(context.parking.withLock { $0.suspended })])
                }
            }
            // ...then, briefly, for MHD's threads to send what they resumed.
            let deadline = ContinuousClock.now + .seconds(2)
            while context.parking.withLock({ $0.unfinished }) > 0 && ContinuousClock.now < deadline {
                usleep(1000)
            }
            MHD_stop_daemon(daemon)
            handle.daemon = nil
            if handle.quiescedSocket >= 0 {
                close(handle.quiescedSocket)
                handle.quiescedSocket = -1
            }
        }
    }

    deinit { stop() }
}

// MARK: - C callbacks (each is a plain function so Swift can hand it to C as a pointer)

/// Called once per request, before the headers, with the raw request target.
private func mhdURICallback(_ cls: UnsafeMutableRawPointer?, _ uri: UnsafePointer<CChar>?, _ connection: OpaquePointer?)
    -> UnsafeMutableRawPointer?
{
    guard let cls else { return nil }
    let context = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    context.requestsInFlight.add(1, ordering: .relaxed)
    let state = RequestState(target: uri.map { String(cString: $0) } ?? "/")
    // Ownership: MHD holds this +1 in con_cls until mhdRequestCompleted takes it back.
    return Unmanaged.passRetained(state).toOpaque()
}

/// Called after the headers, once per chunk of body, and once more when the body is complete.
private func mhdAccessHandler(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?, _ url: UnsafePointer<CChar>?,
    _ method: UnsafePointer<CChar>?, _ version: UnsafePointer<CChar>?, _ uploadData: UnsafePointer<CChar>?,
    _ uploadDataSize: UnsafeMutablePointer<Int>?, _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> MHD_Result {
    guard let cls, let connection, let conCls, let raw = conCls.pointee else { return .NO }
    let context = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    let state = Unmanaged<RequestState>.fromOpaque(raw).takeUnretainedValue()
    let limit = context.configuration.maximumBodySize
    // Past this many body bytes a client is cut off instead of read to the end.
    let cutOff = limit > Int.max / 16 ? Int.max : limit * 16

    if !state.isStarted {
        state.isStarted = true
        state.method = method.map { String(cString: $0) } ?? "GET"
        let clientID = lookupHeader(connection, "X-Request-Id")
        state.requestID = clientID.flatMap { RequestID.isSane($0) ? $0 : nil } ?? RequestID.generate()
        state.remoteAddress = clientAddress(connection)
        if let length = lookupHeader(connection, "Content-Length").flatMap({ Int($0) }) {
            if length > limit {
                state.isTooLarge = true
                let expectsContinue = lookupHeader(connection, "Expect")?.lowercased() == "100-continue"
                guard expectsContinue || length > cutOff else {
                    // The body is on its way: drop it as it comes and answer at its end.
                    // Closing on an unread body makes the kernel reset the connection, and
                    // the client can lose the 413 that was already sent.
                    return .YES
                }
                // Answer before the body: a client that sent `Expect: 100-continue` never
                // uploads it; one sending far more than the limit is cut off.
                return queue(
                    HTTPError.payloadTooLarge(limit: limit).response(requestID: state.requestID),
                    connection, state, context)
            }
            state.body.reserveCapacity(length)
        }
        return .YES
    }

    if let uploadDataSize, uploadDataSize.pointee > 0 {
        let count = uploadDataSize.pointee
        state.bodyBytesReceived += count
        if state.isTooLarge || state.body.count + count > limit {
            // A chunked body grew past the limit: stop keeping it; MHD allows no response
            // while the body is still arriving, so the 413 goes out once it has. A client
            // that keeps sending far beyond the limit is cut off.
            state.isTooLarge = true
            state.body = []
            if state.bodyBytesReceived > cutOff { return .NO }
        } else if let uploadData {
            uploadData.withMemoryRebound(to: UInt8.self, capacity: count) { bytes in
                state.body.append(contentsOf: UnsafeBufferPointer(start: bytes, count: count))
            }
        }
        uploadDataSize.pointee = 0
        return .YES
    }

    if state.isTooLarge {
        return queue(
            HTTPError.payloadTooLarge(limit: limit).response(requestID: state.requestID), connection, state,
            context)
    }
    if let response = state.deferredAnswer {
        // Called again after the deferred answer came and resumed the connection.
        state.deferredAnswer = nil
        return queue(response, connection, state, context)
    }
    if context.parking.withLock({ $0.isClosed }) {
        // The daemon is stopping: a write run now could be stored with no way left to
        // answer it, so nothing is run; the client retries elsewhere or later.
        return queue(
            HTTPError.unavailable("the server is stopping; retry", retryAfterSeconds: 1)
                .response(requestID: state.requestID), connection, state, context)
    }
    var headers = HTTPHeaders()
    withUnsafeMutablePointer(to: &headers) { pointer in
        _ = MHD_get_connection_values(connection, .HEADER_KIND, collectHeader, UnsafeMutableRawPointer(pointer))
    }
    let request = HTTPRequest(
        method: HTTPMethod(state.method), target: state.target, headers: headers,
        body: state.body, remoteAddress: state.remoteAddress, requestID: state.requestID)
    state.body = []
    let response = context.handler(request)
    if let deferred = response.deferred {
        // The handler answers later from another thread (a write, once its group commit is
        // durable): park the connection until then, so this event loop serves the others.
        guard let parked = park(connection, state, context) else {
            // The daemon began stopping while the handler ran: wait here, on a thread
            // MHD_stop_daemon joins.
            return queue(deferred.wait(), connection, state, context)
        }
        deferred.whenResolved { parked.answer($0, context) }
        return .YES
    }
    return queue(response, connection, state, context)
}

/// Suspends the connection until `ParkedRequest.answer` resumes it with the response;
/// nil (nothing suspended) once the daemon is stopping. Call from the access handler
/// only (MHD's rule for `MHD_suspend_connection`).
private func park(_ connection: OpaquePointer, _ state: RequestState, _ context: ServerContext) -> ParkedRequest? {
    let isOpen = context.parking.withLock { parking in
        guard !parking.isClosed else { return false }
        parking.suspended += 1
        parking.unfinished += 1
        return true
    }
    guard isOpen else { return nil }
    state.wasParked = true
    MHD_suspend_connection(connection)
    return ParkedRequest(connection: connection, state: state)
}

/// A suspended connection and its request state, for the thread that resolves its
/// `DeferredResponse`.
/// @unchecked: MHD does not touch a suspended connection, and that thread touches `state`
/// only before `MHD_resume_connection`, MHD's thread only after it.
private struct ParkedRequest: @unchecked Sendable {
    let connection: OpaquePointer
    let state: RequestState

    /// Leaves the response for the access handler, which MHD calls again once resumed.
    func answer(_ response: HTTPResponse, _ context: ServerContext) {
        state.deferredAnswer = response
        // On the access-log line even when the client has gone and nothing is sent (the
        // request id of a write that was stored).
        state.accessLog = response.accessLog
        MHD_resume_connection(connection)
        context.parking.withLock { $0.suspended -= 1 }
    }
}

/// Called when a request ends, however it ends; releases the request state and writes
/// the access log line.
private func mhdRequestCompleted(
    _ cls: UnsafeMutableRawPointer?, _ connection: OpaquePointer?,
    _ conCls: UnsafeMutablePointer<UnsafeMutableRawPointer?>?,
    _ termination: MHD_RequestTerminationCode
) {
    guard let cls, let conCls, let raw = conCls.pointee else { return }
    conCls.pointee = nil
    let context = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    // Ownership: takes back the +1 from mhdURICallback.
    let state = Unmanaged<RequestState>.fromOpaque(raw).takeRetainedValue()
    context.requestsInFlight.subtract(1, ordering: .relaxed)
    if state.wasParked { context.parking.withLock { $0.unfinished -= 1 } }

    let elapsed = ContinuousClock.now - state.started
    let microseconds = max(0, elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
    let fraction = String(microseconds % 1000)
    let outcome: String =
        switch termination {
        case .REQUEST_TERMINATED_COMPLETED_OK: "ok"
        case .REQUEST_TERMINATED_TIMEOUT_REACHED: "timeout"
        case .REQUEST_TERMINATED_DAEMON_SHUTDOWN: "shutdown"
        case .REQUEST_TERMINATED_CLIENT_ABORT, .REQUEST_TERMINATED_READ_ERROR: "client_abort"
        default: "error"
        }
    // Method, path, status, sizes, timing: never headers, query strings or bodies, which
    // may carry tokens and keys.
    var metadata = [
        "http.method": state.method.isEmpty ? "-" : state.method,
        "http.path": state.pathForLog,
        "http.status": String(state.status),
        "http.duration_ms": "\(microseconds / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction,
        "http.request_id": state.requestID.isEmpty ? "-" : state.requestID,
        "http.request_bytes": String(state.bodyBytesReceived),
        "http.response_bytes": String(state.responseBytes),
        "http.outcome": outcome,
    ]
    if let remote = state.remoteAddress { metadata["http.remote"] = remote }
    for (key, value) in state.accessLog where metadata[key] == nil { metadata[key] = value }
    context.logger.info("http.request", metadata)
}

/// libmicrohttpd's own diagnostics (bind failures, TLS errors, protocol violations).
private func mhdLog(_ cls: UnsafeMutableRawPointer?, _ format: UnsafePointer<CChar>?, _ arguments: CVaListPointer?) {
    guard let cls, let format, let arguments else { return }
    let context = Unmanaged<ServerContext>.fromOpaque(cls).takeUnretainedValue()
    var buffer = [CChar](repeating: 0, count: 512)
    _ = gatehouse_mhd_format(&buffer, buffer.count, format, arguments)
    let message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        .trimmingCharacters(in: .whitespacesAndNewlines)
    context.lastDaemonMessage.withLock { $0 = message }
    context.logger.warning("http.daemon", ["mhd.message": message])
}

private func collectHeader(
    _ cls: UnsafeMutableRawPointer?, _ kind: MHD_ValueKind, _ key: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?
) -> MHD_Result {
    guard let cls, let key else { return .YES }
    cls.assumingMemoryBound(to: HTTPHeaders.self).pointee.add(
        String(cString: key), value.map { String(cString: $0) } ?? "")
    return .YES
}

private func lookupHeader(_ connection: OpaquePointer, _ name: String) -> String? {
    MHD_lookup_connection_value(connection, .HEADER_KIND, name).map { String(cString: $0) }
}

private func clientAddress(_ connection: OpaquePointer) -> String? {
    var buffer = [CChar](repeating: 0, count: 64)
    guard gatehouse_mhd_client_address(connection, &buffer, buffer.count) == 0 else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// Hands `response` to MHD (which copies the body) with `X-Request-Id`.
private func queue(
    _ response: HTTPResponse, _ connection: OpaquePointer, _ state: RequestState,
    _ context: ServerContext
) -> MHD_Result {
    var body = response.body
    if body.isEmpty { body = [0] }  // a valid pointer for MHD; the size passed below is still 0
    let size = response.body.count
    guard
        let mhdResponse = body.withUnsafeMutableBytes({ raw in
            MHD_create_response_from_buffer(size, raw.baseAddress, .RESPMEM_MUST_COPY)
        })
    else { return .NO }
    defer { MHD_destroy_response(mhdResponse) }
    for (name, value) in response.headers where isSafeHeader(name, value) {
        let lowered = name.lowercased()
        // MHD computes framing itself; a handler cannot override the request id.
        if lowered == "content-length" || lowered == "transfer-encoding" || lowered == "x-request-id" { continue }
        _ = MHD_add_response_header(mhdResponse, name, value)
    }
    _ = MHD_add_response_header(mhdResponse, "X-Request-Id", state.requestID)
    if context.isDraining.load(ordering: .relaxed) {
        _ = MHD_add_response_header(mhdResponse, "Connection", "close")
    }
    state.status = response.status.code
    state.responseBytes = size
    state.accessLog = response.accessLog
    return MHD_queue_response(connection, UInt32(clamping: response.status.code), mhdResponse)
}

/// Header names are tokens and values have no line breaks (which would split the response).
private func isSafeHeader(_ name: String, _ value: String) -> Bool {
    !name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") }
        && !value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
}
