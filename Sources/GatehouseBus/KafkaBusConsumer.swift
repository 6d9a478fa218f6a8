import CRdKafka
import Foundation
import GatehouseCore
import Synchronization

/// Consumes Kafka topics in a consumer group with manual commits
/// (`enable.auto.commit=false`, `auto.offset.reset=earliest`): nothing counts as done
/// until `commit`, so a crash before it redelivers the record to the group.
///
/// Blocking librdkafka calls run on two serial dispatch queues (their own threads): polls
/// and close on one, synchronous commits on the other, so a commit never waits behind a
/// long poll and no Swift task blocks.
public final class KafkaBusConsumer: BusConsumer {
    private let handle: RDKafkaHandle
    private let pollQueue = DispatchQueue(label: "gatehouse.kafka.consumer.poll")
    private let commitQueue = DispatchQueue(label: "gatehouse.kafka.consumer.commit")
    private let isClosed = Atomic<Bool>(false)
    private let logger: Logger
    private let group: String

    private init(handle: RDKafkaHandle, group: String, logger: Logger) {
        self.handle = handle
        self.group = group
        self.logger = logger
    }

    /// The consumer defaults; `options` override them (e.g. `session.timeout.ms`, TLS, SASL).
    static func properties(brokers: String, group: String, options: [String: String]) -> [String: String] {
        var properties: [String: String] = [
            "bootstrap.servers": brokers,
            "client.id": "gatehouse",
            "group.id": group,
            "enable.auto.commit": "false",
            "enable.auto.offset.store": "false",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": "false",
        ]
        for (key, value) in options { properties[key] = value }
        return properties
    }

    /// Creates the consumer and subscribes; partitions arrive with the first polls.
    /// - Throws: `GatehouseError.configuration` for a rejected property, or the subscribe error.
    static func make(brokers: String, group: String, topics: [String], options: [String: String], logger: Logger)
        throws -> KafkaBusConsumer
    {
        let handle = try RDKafkaHandle.make(
            kind: RD_KAFKA_CONSUMER, properties: properties(brokers: brokers, group: group, options: options),
            logger: logger
        ) { conf in
            rd_kafka_conf_set_rebalance_cb(conf) { handle, code, partitions, opaque in
                KafkaBusConsumer.rebalance(handle, code, partitions, RDKafkaContext.from(opaque))
            }
        }
        // Serve the main queue (errors, logs, rebalances) through rd_kafka_consumer_poll.
        _ = rd_kafka_poll_set_consumer(handle.pointer)
        guard let list = rd_kafka_topic_partition_list_new(Int32(topics.count)) else {
            throw GatehouseError(.internal, "rd_kafka_topic_partition_list_new failed")
        }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for topic in topics { rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA) }
        let code = rd_kafka_subscribe(handle.pointer, list)
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else { throw RDKafka.error(code, "subscribe") }
        logger.info(
            "kafka consumer subscribed",
            ["kafka.brokers": brokers, "kafka.group": group, "kafka.topics": topics.joined(separator: ",")])
        return KafkaBusConsumer(handle: handle, group: group, logger: logger)
    }

    /// Applies a rebalance (runs inside `rd_kafka_consumer_poll`, on the poll queue).
    /// Eager protocols replace the whole assignment; cooperative ones change it incrementally.
    private static func rebalance(
        _ handle: OpaquePointer?, _ code: rd_kafka_resp_err_t,
        _ partitions: UnsafeMutablePointer<
            rd_kafka_topic_partition_list_t
        >?, _ context: RDKafkaContext?
    ) {
        guard let handle else { return }
        let isCooperative = rd_kafka_rebalance_protocol(handle).map { String(cString: $0) } == "COOPERATIVE"
        var described: [String] = []
        if let partitions {
            for index in 0..<Int(partitions.pointee.cnt) {
                let element = partitions.pointee.elems[index]
                described.append("\(String(cString: element.topic))[\(element.partition)]")
            }
        }
        let metadata = ["kafka.partitions": described.joined(separator: ","), "kafka.cooperative": "\(isCooperative)"]
        switch code {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            context?.logger.info("kafka partitions assigned", metadata)
            if isCooperative {
                if let error = rd_kafka_incremental_assign(handle, partitions) { rd_kafka_error_destroy(error) }
            } else {
                _ = rd_kafka_assign(handle, partitions)
            }
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            context?.logger.info("kafka partitions revoked", metadata)
            if isCooperative {
                if let error = rd_kafka_incremental_unassign(handle, partitions) { rd_kafka_error_destroy(error) }
            } else {
                _ = rd_kafka_assign(handle, nil)
            }
        default:
            context?.logger.error(
                "kafka rebalance failed",
                metadata.merging(["kafka.error": String(cString: rd_kafka_err2name(code))]) {
                    $1
                })
            _ = rd_kafka_assign(handle, nil)
        }
    }

    public func poll(maxRecords: Int, timeout: Duration) async throws -> [BusRecord] {
        precondition(maxRecords > 0, "maxRecords must be positive")
        guard !isClosed.load(ordering: .relaxed) else { throw GatehouseError(.bus, "the kafka consumer is closed") }
        let handle = self.handle
        let logger = self.logger
        let timeoutMilliseconds = max(
            0, timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return try await withCheckedThrowingContinuation { continuation in
            pollQueue.async {
                continuation.resume(
                    with: Result {
                        try Self.pollBlocking(
                            handle, maxRecords: maxRecords, timeoutMilliseconds: timeoutMilliseconds, logger: logger)
                    })
            }
        }
    }

    /// Waits up to the timeout for a first record (in 100 ms slices), then takes what is
    /// already fetched without waiting, up to `maxRecords`.
    private static func pollBlocking(
        _ handle: RDKafkaHandle, maxRecords: Int, timeoutMilliseconds: Int64, logger: Logger
    ) throws -> [BusRecord] {
        var records: [BusRecord] = []
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMilliseconds) * 1_000_000
        while records.count < maxRecords {
            let now = DispatchTime.now().uptimeNanoseconds
            let wait: Int32 = records.isEmpty && now < deadline ? Int32(min(100, (deadline - now) / 1_000_000)) : 0
            guard let message = rd_kafka_consumer_poll(handle.pointer, wait) else {
                if !records.isEmpty || now >= deadline { break }
                continue
            }
            defer { rd_kafka_message_destroy(message) }
            let code = message.pointee.err
            guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
                if code == RD_KAFKA_RESP_ERR__PARTITION_EOF { continue }
                var errorText = [CChar](repeating: 0, count: 512)
                let fatal = rd_kafka_fatal_error(handle.pointer, &errorText, errorText.count)
                if fatal != RD_KAFKA_RESP_ERR_NO_ERROR {
                    logger.error("kafka consumer failed", ["kafka.error": RDKafka.string(errorText)])
                    throw RDKafka.error(fatal, "consume")
                }
                // Transient (broker down, topic not there yet): librdkafka retries by itself.
                logger.warning("kafka consumer error", ["kafka.error": String(cString: rd_kafka_err2name(code))])
                continue
            }
            let topic = message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
            let key =
                message.pointee.key.map {
                    String(decoding: UnsafeRawBufferPointer(start: $0, count: message.pointee.key_len), as: UTF8.self)
                } ?? ""
            let value =
                message.pointee.payload.map { [UInt8](UnsafeRawBufferPointer(start: $0, count: message.pointee.len)) }
                ?? []
            records.append(
                BusRecord(
                    topic: topic, partition: message.pointee.partition, offset: message.pointee.offset, key: key,
                    value: value))
        }
        return records
    }

    /// Commits `record.offset + 1` for its partition, synchronously (the broker has it when
    /// this returns).
    /// - Throws: `GatehouseError` when the commit fails, e.g. because a rebalance took the
    ///   partition away: the record will be redelivered to its new owner.
    public func commit(_ record: BusRecord) async throws {
        guard !isClosed.load(ordering: .relaxed) else { throw GatehouseError(.bus, "the kafka consumer is closed") }
        let handle = self.handle
        let code: rd_kafka_resp_err_t = await withCheckedContinuation { continuation in
            commitQueue.async {
                guard let list = rd_kafka_topic_partition_list_new(1) else {
                    continuation.resume(returning: RD_KAFKA_RESP_ERR__FAIL)
                    return
                }
                defer { rd_kafka_topic_partition_list_destroy(list) }
                let element = rd_kafka_topic_partition_list_add(list, record.topic, record.partition)
                element?.pointee.offset = record.offset + 1
                var code = rd_kafka_commit(handle.pointer, list, 0)
                if code == RD_KAFKA_RESP_ERR_NO_ERROR, let element, element.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    code = element.pointee.err
                }
                continuation.resume(returning: code)
            }
        }
        guard code == RD_KAFKA_RESP_ERR_NO_ERROR else {
            logger.warning(
                "kafka commit failed",
                [
                    "kafka.topic": record.topic, "kafka.partition": String(record.partition),
                    "kafka.offset": String(record.offset), "kafka.error": String(cString: rd_kafka_err2name(code)),
                ])
            throw RDKafka.error(code, "commit")
        }
    }

    /// Leaves the group (its partitions go to the other members at once) and stops fetching.
    public func close() async {
        guard !isClosed.exchange(true, ordering: .relaxed) else { return }
        let handle = self.handle
        let code = await withCheckedContinuation { (continuation: CheckedContinuation<rd_kafka_resp_err_t, Never>) in
            pollQueue.async { continuation.resume(returning: rd_kafka_consumer_close(handle.pointer)) }
        }
        if code != RD_KAFKA_RESP_ERR_NO_ERROR {
            logger.warning("kafka consumer close failed", ["kafka.error": String(cString: rd_kafka_err2name(code))])
        }
        logger.info("kafka consumer closed", ["kafka.group": group])
    }
}
