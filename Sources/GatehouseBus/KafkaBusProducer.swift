import CRdKafka
import Foundation
import GatehouseCore
import Synchronization

/// A one-shot result for one produced message, completed by its delivery report.
///
/// Goes to librdkafka as the message's opaque (`Unmanaged.passRetained`); the delivery
/// report callback takes that reference back (`takeRetainedValue`). When `producev`
/// fails at once, the caller releases it instead.
final class DeliveryReport: Sendable {
    typealias Outcome = Result<(partition: Int32, offset: Int64), GatehouseError>
    private enum State {
        case pending(CheckedContinuation<(partition: Int32, offset: Int64), any Error>?)
        case done(Outcome)
    }

    private let state = Mutex(State.pending(nil))

    func complete(_ outcome: Outcome) {
        let waiter: CheckedContinuation<(partition: Int32, offset: Int64), any Error>? = state.withLock { state in
            guard case .pending(let waiter) = state else { return nil }
            state = .done(outcome)
            return waiter
        }
        waiter?.resume(with: outcome.mapError { $0 as any Error })
    }

    /// Waits for the delivery report (at most `message.timeout.ms`, after which librdkafka
    /// reports a timeout).
    func wait() async throws -> (partition: Int32, offset: Int64) {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Outcome? = state.withLock { state in
                switch state {
                case .done(let outcome): return outcome
                case .pending:
                    state = .pending(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }
}

/// Serves a handle's callbacks (delivery reports, logs, errors) with `rd_kafka_poll` on a
/// dedicated thread, so no Swift task ever blocks in librdkafka.
final class RDKafkaPollThread: Sendable {
    private let isStopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the thread; it holds `handle` until it stops (then the handle may be destroyed).
    /// `drain` runs on the thread once after the stop request, before it lets go of the handle.
    func start(_ handle: RDKafkaHandle, name: String, drain: @escaping @Sendable (RDKafkaHandle) -> Void) {
        let thread = Thread { [self] in
            while !isStopping.load(ordering: .acquiring) { _ = rd_kafka_poll(handle.pointer, 100) }
            drain(handle)
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Asks the thread to stop; it finishes its current 100 ms poll first.
    func stop() { isStopping.store(true, ordering: .releasing) }

    /// Stops and waits (off the cooperative pool) until the thread has drained.
    func stopAndWait() async {
        stop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [finished] in
                finished.wait()
                finished.signal()  // later waiters pass too
                continuation.resume()
            }
        }
    }
}

/// Publishes to Kafka with an idempotent producer (`enable.idempotence=true`, `acks=all`):
/// a publish returns when its own delivery report says every in-sync replica has it.
/// Messages are keyed, so one device's commands go to one partition, in order.
public final class KafkaBusProducer: BusProducer {
    private let handle: RDKafkaHandle
    private let poller: RDKafkaPollThread
    private let isClosed = Atomic<Bool>(false)
    private let logger: Logger

    private init(handle: RDKafkaHandle, poller: RDKafkaPollThread, logger: Logger) {
        self.handle = handle
        self.poller = poller
        self.logger = logger
    }

    /// The producer defaults; `options` override them (e.g. `message.timeout.ms`, TLS, SASL).
    static func properties(brokers: String, options: [String: String]) -> [String: String] {
        var properties: [String: String] = [
            "bootstrap.servers": brokers,
            "client.id": "gatehouse",
            "enable.idempotence": "true",
            "acks": "all",
            // How long a publish may wait for a broker before it fails (the relay retries).
            "message.timeout.ms": "30000",
            "linger.ms": "5",
        ]
        for (key, value) in options { properties[key] = value }
        return properties
    }

    /// - Throws: `GatehouseError.configuration` when librdkafka rejects a property.
    static func make(brokers: String, options: [String: String], logger: Logger) throws -> KafkaBusProducer {
        let handle = try RDKafkaHandle.make(
            kind: RD_KAFKA_PRODUCER, properties: properties(brokers: brokers, options: options), logger: logger
        ) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf) { _, message, _ in
                guard let message, let opaque = message.pointee._private else { return }
                // Balances the passRetained in `enqueue`.
                let report = Unmanaged<DeliveryReport>.fromOpaque(opaque).takeRetainedValue()
                let code = message.pointee.err
                if code == RD_KAFKA_RESP_ERR_NO_ERROR {
                    report.complete(.success((message.pointee.partition, message.pointee.offset)))
                } else {
                    report.complete(.failure(RDKafka.error(code, "delivery")))
                }
            }
        }
        let poller = RDKafkaPollThread()
        poller.start(handle, name: "gatehouse-kafka-producer") { handle in
            // Whatever is still queued fails now (its publisher sees a purge error) instead
            // of leaving a continuation waiting forever.
            _ = rd_kafka_flush(handle.pointer, 5000)
            _ = rd_kafka_purge(handle.pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            _ = rd_kafka_poll(handle.pointer, 0)
        }
        logger.info("kafka producer started", ["kafka.brokers": brokers])
        return KafkaBusProducer(handle: handle, poller: poller, logger: logger)
    }

    deinit { poller.stop() }

    public func publish(topic: String, key: String, value: [UInt8]) async throws {
        let report = try await enqueue(topic: topic, key: key, value: value)
        _ = try await report.wait()
    }

    /// Hands every message to librdkafka in order, then waits for all delivery reports,
    /// so a batch costs about one round trip instead of one per message.
    public func publish(batch: [BusMessage]) async throws {
        var reports: [DeliveryReport] = []
        reports.reserveCapacity(batch.count)
        for message in batch {
            reports.append(try await enqueue(topic: message.topic, key: message.key, value: message.value))
        }
        var firstError: (any Error)?
        for report in reports {
            do { _ = try await report.wait() } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
    }

    /// Queues one message, waiting (bounded) while librdkafka's local queue is full.
    private func enqueue(topic: String, key: String, value: [UInt8]) async throws -> DeliveryReport {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(30))
        while true {
            guard !isClosed.load(ordering: .relaxed) else {
                throw GatehouseError(.bus, "the kafka producer is closed")
            }
            let report = DeliveryReport()
            let opaque = Unmanaged.passRetained(report).toOpaque()
            let code = key.withCString { keyPointer in
                value.withUnsafeBytes { bytes in
                    gatehouse_rd_kafka_produce(
                        handle.pointer, topic, keyPointer, strlen(keyPointer), bytes.baseAddress, bytes.count, opaque)
                }
            }
            if code == RD_KAFKA_RESP_ERR_NO_ERROR { return report }
            // librdkafka did not take the message, so no delivery report will release it.
            Unmanaged<DeliveryReport>.fromOpaque(opaque).release()
            guard code == RD_KAFKA_RESP_ERR__QUEUE_FULL, clock.now < deadline else {
                logger.warning(
                    "kafka produce failed",
                    [
                        "kafka.topic": topic, "kafka.error": String(cString: rd_kafka_err2name(code)),
                        "bus.bytes": String(value.count),
                    ])
                throw RDKafka.error(code, "produce to \(topic)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits (on a dispatch thread) until every queued message has its delivery report.
    public func flush() async throws {
        let handle = self.handle
        let code = await withCheckedContinuation { (continuation: CheckedContinuation<rd_kafka_resp_err_t, Never>) in
            DispatchQueue.global().async { continuation.resume(returning: rd_kafka_flush(handle.pointer, 30_000)) }
        }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR { throw RDKafka.error(code, "flush") }
    }

    /// Flushes (at most 5 s), fails what is left, and stops the poll thread.
    public func close() async {
        guard !isClosed.exchange(true, ordering: .relaxed) else { return }
        await poller.stopAndWait()
        logger.info("kafka producer closed")
    }
}

extension KafkaBusProducer {
    /// The version of the librdkafka loaded at run time (not the headers built against).
    public static var librdkafkaVersion: String { String(cString: rd_kafka_version_str()) }
}
