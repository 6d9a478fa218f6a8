import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseStore
import Synchronization

/// The monitor service: joins the multicast group, feeds every datagram to a
/// `MonitorCore`, ticks the conditions, runs the actions, pushes to the Pushgateway and
/// serves `/metrics` text. One `run()` until cancelled (swift-service-lifecycle style).
///
/// Threads: the receive loop runs on a thread of its own (blocking recvmmsg); actions,
/// pushes and key reloads are child tasks of `run()`; the core sits behind a `Mutex`,
/// taken once per received batch and once per tick.
public final class MonitorService: Sendable {
    public let configuration: MonitorConfiguration
    /// Decrypted EMMs seen for the first time, in arrival order. Buffers the newest 65 536
    /// when nobody reads; one consumer.
    public let observations: AsyncStream<EMMObservation>

    private let observationContinuation: AsyncStream<EMMObservation>.Continuation
    private let events: AsyncStream<MonitorEvent>
    private let eventContinuation: AsyncStream<MonitorEvent>.Continuation
    private let core: LockedCore
    private let registry = MetricsRegistry()
    private let logger: Logger
    private let eventSink: (any MonitorEventSink)?
    private let database: (any SQLDatabase)?
    private let kek: SymmetricKey?
    private let configuredKeys: DeviceKeyring
    private let rulesByName: [String: MonitorRule]
    private let lastTick = Atomic<UInt64>(0)
    /// The SO_RCVBUF the kernel granted, once `run()` has opened the socket (0 before).
    private let grantedBuffer = Atomic<Int>(0)

    /// - Parameters:
    ///   - eventSink: where `bus` actions go (nil: they are dropped, with a debug log line).
    ///   - database, kek: when both are given, every active device's current key is read
    ///     from the store at start and every `keysRefreshSeconds`, unwrapped with the KEK,
    ///     and merged with the configured keys (configured keys win).
    public init(
        configuration: MonitorConfiguration, logger: Logger, eventSink: (any MonitorEventSink)? = nil,
        database: (any SQLDatabase)? = nil, kek: SymmetricKey? = nil
    ) {
        self.configuration = configuration
        self.logger = logger.with(label: "monitor")
        self.eventSink = eventSink
        self.database = database
        self.kek = kek
        configuredKeys = DeviceKeyring(configuration.keys)
        let core = MonitorCore(settings: MonitorCore.Settings(configuration), keyring: configuredKeys)
        var byName: [String: MonitorRule] = [:]
        for state in core.conditionStates { byName[state.rule.name] = state.rule }
        rulesByName = byName
        self.core = LockedCore(core)
        (observations, observationContinuation) = AsyncStream.makeStream(
            of: EMMObservation.self,
            bufferingPolicy: .bufferingNewest(65536))
        (events, eventContinuation) = AsyncStream.makeStream(
            of: MonitorEvent.self, bufferingPolicy: .bufferingNewest(4096))
        registry.addCollector { [weak self] in
            guard let self else { return }
            let now = SystemCall.monotonicNanoseconds()
            self.core.withLock { $0.publishMetrics(into: self.registry, at: now) }
            self.registry.gauge(
                "gatehouse_monitor_receive_buffer_bytes",
                help: "SO_RCVBUF granted by the kernel (Linux reports twice the usable size)"
            )
            .set(Double(self.grantedBuffer.load(ordering: .relaxed)))
        }
    }

    /// The `/metrics` text exposition (Prometheus text format 0.0.4).
    public func metricsText() -> String { registry.render() }

    /// The registry, for a `/metrics` endpoint that serves other families too.
    public var metrics: MetricsRegistry { registry }

    /// The SO_RCVBUF the kernel granted (0 before `run()` opened the socket).
    public var grantedReceiveBufferBytes: Int { grantedBuffer.load(ordering: .relaxed) }

    /// The core's counters now (tests, status pages).
    public func snapshot() -> MonitorSnapshot { core.withLock { $0.snapshot() } }

    /// Receives, analyses, acts and pushes until the task is cancelled; then stops the
    /// receiver (within ~100 ms), finishes `observations`, and deletes the group from the
    /// Pushgateway. Call it once per service.
    /// - Throws: a socket error from joining or receiving (naming the call), never for
    ///   a failed push or webhook (those are logged and counted).
    public func run() async throws {
        let settings = MulticastReceiverSettings(
            group: configuration.group, interface: configuration.interface,
            source: configuration.source, receiveBufferBytes: configuration.receiveBufferBytes)
        let receiver = try MulticastReceiver(settings: settings)
        grantedBuffer.store(receiver.grantedReceiveBufferBytes, ordering: .relaxed)
        logger.info(
            "monitor.joined",
            [
                "multicast.group": configuration.group.description, "multicast.interface": configuration.interface,
                "multicast.source": configuration.source ?? "any",
                "socket.rcvbuf.requested": String(configuration.receiveBufferBytes),
                "socket.rcvbuf.granted": String(receiver.grantedReceiveBufferBytes),
                "keys.configured": String(configuredKeys.count),
            ])
        if receiver.grantedReceiveBufferBytes < 2 * configuration.receiveBufferBytes {
            logger.warning(
                "monitor.rcvbuf.smaller_than_requested",
                [
                    "socket.rcvbuf.requested": String(configuration.receiveBufferBytes),
                    "socket.rcvbuf.granted": String(receiver.grantedReceiveBufferBytes),
                    "hint": "raise net.core.rmem_max",
                ])
        }
        let pusher = try configuration.pushgatewayURL.map { url in
            PushgatewayPusher(
                baseURL: try HTTPURL(parsing: url), job: configuration.pushJob,
                instance: configuration.instance, group: configuration.group.description,
                timeoutSeconds: configuration.pushTimeoutSeconds, attempts: configuration.pushAttempts)
        }
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.receive(receiver) }
                group.addTask { await self.dispatchEvents() }
                if let pusher { group.addTask { await self.pushLoop(pusher) } }
                if let database = self.database, let kek = self.kek {
                    group.addTask { await self.refreshKeys(database: database, kek: kek) }
                }
                // Whichever ends first (the receiver failing, or cancellation) ends them all.
                try await group.next()
                group.cancelAll()
            }
        } catch {
            receiver.stop()
            await shutdown(pusher)
            throw error
        }
        receiver.stop()
        await shutdown(pusher)
    }

    /// Ends the observation stream once `run()` is over, so a consumer's loop finishes.
    private func finishStreams() {
        observationContinuation.finish()
        eventContinuation.finish()
    }

    private func shutdown(_ pusher: PushgatewayPusher?) async {
        logger.info("monitor.stopping")
        finishStreams()
        guard let pusher else { return }
        // The caller's task is cancelled: delete from a fresh task so the bounded retries can run.
        let logger = self.logger
        await Task {
            do {
                try await pusher.delete()
                logger.info("monitor.pushgateway.group_deleted", ["pushgateway.path": pusher.groupingPath])
            } catch {
                logger.warning("monitor.pushgateway.delete_failed", ["error": "\(error)"])
            }
        }.value
    }

    // MARK: Receiving

    private func receive(_ receiver: MulticastReceiver) async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                let thread = Thread { [self] in
                    do {
                        try receiver.receiveLoop({ batch in self.handle(batch) }, idle: { self.tickIfDue() })
                        continuation.resume()
                    } catch {
                        self.logger.error("monitor.receive.failed", ["error": "\(error)"])
                        continuation.resume(throwing: error)
                    }
                }
                thread.name = "gatehouse-monitor-rx"
                thread.start()
            }
        } onCancel: {
            receiver.stop()
        }
    }

    private func handle(_ batch: MulticastReceiver.Batch) {
        let now = MonitorInstant.now()
        let observations = core.withLock { core -> [EMMObservation] in
            for datagram in batch.datagrams { core.ingest(datagram, at: now) }
            if let drops = batch.kernelDrops { core.kernelDrops = UInt64(drops) }
            core.truncatedDatagrams += UInt64(batch.truncated)
            return core.drainObservations()
        }
        for observation in observations { observationContinuation.yield(observation) }
    }

    /// Ticks the conditions at most every 100 ms (the receive loop calls this after every wake-up).
    private func tickIfDue() {
        let now = MonitorInstant.now()
        let last = lastTick.load(ordering: .relaxed)
        guard now.monotonic &- last >= 100_000_000 else { return }
        lastTick.store(now.monotonic, ordering: .relaxed)
        let events = core.withLock { core -> [MonitorEvent] in
            core.tick(at: now)
            return core.drainEvents()
        }
        for event in events { eventContinuation.yield(event) }
    }

    // MARK: Actions

    private func dispatchEvents() async {
        for await event in events {
            await perform(event)
        }
    }

    /// Runs the actions of `event`'s rule. Never throws: failures are logged and counted.
    func perform(_ event: MonitorEvent) async {
        let actions = rulesByName[event.rule]?.actions ?? [.log]
        if actions.contains(.log) {
            var metadata = event.labels
            metadata["rule"] = event.rule
            metadata["condition"] = event.condition
            metadata["value"] = MetricsText.format(event.value)
            if event.state == .fired {
                logger.warning("monitor.condition.fired", metadata)
            } else {
                logger.notice("monitor.condition.cleared", metadata)
            }
        }
        if actions.contains(.webhook), let hook = configuration.rules.webhook {
            await deliverWebhook(event, hook)
        }
        if actions.contains(.bus) {
            if let eventSink {
                do {
                    try await eventSink.publish(event)
                    registry.counter(
                        "gatehouse_monitor_bus_events_total", help: "Condition events published",
                        labels: [("result", "ok")]
                    ).increment()
                } catch {
                    registry.counter(
                        "gatehouse_monitor_bus_events_total", help: "Condition events published",
                        labels: [("result", "failed")]
                    ).increment()
                    logger.warning("monitor.bus.publish_failed", ["rule": event.rule, "error": "\(error)"])
                }
            } else {
                logger.debug("monitor.bus.no_sink", ["rule": event.rule])
            }
        }
    }

    private func deliverWebhook(_ event: MonitorEvent, _ hook: WebhookSettings) async {
        let logger = self.logger
        do {
            let url = try HTTPURL(parsing: hook.url)
            let response = try await HTTPClient.sendWithRetries(
                "POST", url, body: Array(event.jsonBody().utf8),
                contentType: "application/json", timeout: hook.timeoutSeconds, attempts: hook.attempts,
                backoff: hook.backoffSeconds,
                onRetry: { attempt, why in
                    logger.info(
                        "monitor.webhook.retry", ["attempt": String(attempt), "error": why, "rule": event.rule])
                })
            guard (200..<300).contains(response.status) else {
                throw GatehouseError(.unavailable, "webhook answered \(response.status)")
            }
            registry.counter("gatehouse_monitor_webhooks_total", help: "Webhook deliveries", labels: [("result", "ok")])
                .increment()
        } catch {
            registry.counter(
                "gatehouse_monitor_webhooks_total", help: "Webhook deliveries",
                labels: [("result", "failed")]
            ).increment()
            logger.warning("monitor.webhook.failed", ["rule": event.rule, "error": "\(error)"])
        }
    }

    // MARK: Pushgateway

    private func pushLoop(_ pusher: PushgatewayPusher) async {
        let interval = UInt64(configuration.pushIntervalSeconds * 1e9)
        let logger = self.logger
        while !Task.isCancelled {
            do { try await Task.sleep(nanoseconds: interval) } catch { return }
            do {
                try await pusher.push(metricsText()) { attempt, why in
                    logger.info("monitor.pushgateway.retry", ["attempt": String(attempt), "error": why])
                }
                registry.counter(
                    "gatehouse_monitor_pushes_total", help: "Pushes to the Pushgateway",
                    labels: [("result", "ok")]
                ).increment()
            } catch {
                if Task.isCancelled { return }
                registry.counter(
                    "gatehouse_monitor_pushes_total", help: "Pushes to the Pushgateway",
                    labels: [("result", "failed")]
                ).increment()
                logger.warning("monitor.pushgateway.push_failed", ["error": "\(error)"])
            }
        }
    }

    // MARK: Keys

    private func refreshKeys(database: any SQLDatabase, kek: SymmetricKey) async {
        while !Task.isCancelled {
            do {
                let (stored, failures) = try await DeviceKeyring.load(from: database, kek: kek, logger: logger)
                let merged = stored.merging(configuredKeys)
                core.withLock { $0.updateKeyring(merged) }
                logger.debug(
                    "monitor.keys.loaded", ["keys.count": String(merged.count), "keys.failed": String(failures)])
            } catch {
                registry.counter(
                    "gatehouse_monitor_key_refresh_failures_total",
                    help: "Key reloads from the store that failed"
                ).increment()
                logger.warning("monitor.keys.load_failed", ["error": "\(error)"])
            }
            // Wait for the refresh interval, but reload after one second already when EMMs
            // for devices without a key appear (a device registered a moment ago).
            let unknownAtLoad = unknownDeviceCount()
            let started = ContinuousClock.now
            let interval = Duration.milliseconds(Int(max(1, configuration.keysRefreshSeconds) * 1000))
            while ContinuousClock.now - started < interval {
                do { try await Task.sleep(for: .milliseconds(250)) } catch { return }
                if ContinuousClock.now - started >= .seconds(1) && unknownDeviceCount() > unknownAtLoad { break }
            }
        }
    }

    private func unknownDeviceCount() -> UInt64 {
        core.withLock { $0.count(.unknownDevice) }
    }
}

/// The core behind a lock. `MonitorCore` is not thread-safe (it owns OpenSSL contexts
/// through its openers); every access goes through `withLock`.
///
/// `@unchecked Sendable`: `core` is only reached inside `withLock`, which holds `lock`
/// for the whole call (the NIOLockedValueBox pattern); region-based checking cannot see
/// that a borrowed buffer passed in under the lock does not escape.
final class LockedCore: @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private let core: MonitorCore

    init(_ core: MonitorCore) { self.core = core }

    func withLock<T>(_ body: (MonitorCore) throws -> T) rethrows -> T {
        try lock.withLock { _ in try body(core) }
    }
}
