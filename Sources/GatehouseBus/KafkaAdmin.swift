import CRdKafka
import Dispatch
import GatehouseCore

/// Topic administration over the Kafka admin API.
enum KafkaAdmin {
    /// The librdkafka properties the admin client takes over from the caller's options.
    static let connectionPrefixes = [
        "security.", "ssl.", "sasl.", "socket.", "broker.", "api.version", "client.", "metadata.", "reconnect.",
        "retry.", "debug", "log_level", "resolve.", "connections.",
    ]

    /// Creates the topics that do not exist yet (brokers may have auto-creation off);
    /// "already exists" is success. Blocks a dispatch thread, not the caller's.
    /// - Throws: `GatehouseError` when the cluster does not answer within `timeout` or
    ///   refuses to create a topic.
    static func ensureTopics(
        _ topics: [String], partitions: Int, replicationFactor: Int, brokers: String, options: [String: String],
        logger: Logger, timeout: Duration = .seconds(15)
    ) async throws {
        let names = Array(Set(topics)).sorted()
        guard !names.isEmpty else { return }
        // Only connection and security settings: producer or consumer tuning would make
        // librdkafka warn that the admin client ignores it.
        var properties = options.filter { key, _ in Self.connectionPrefixes.contains { key.hasPrefix($0) } }
        properties["bootstrap.servers"] = brokers
        properties["client.id"] = properties["client.id"] ?? "gatehouse-admin"
        let handle = try RDKafkaHandle.make(kind: RD_KAFKA_PRODUCER, properties: properties, logger: logger)
        let timeoutMilliseconds = Int32(
            clamping: timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let created: [String] = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(
                    with: Result {
                        try createTopics(
                            handle, names, partitions: Int32(partitions), replicationFactor: Int32(replicationFactor),
                            timeoutMilliseconds: timeoutMilliseconds)
                    })
            }
        }
        for name in created {
            logger.notice(
                "kafka topic created",
                [
                    "kafka.topic": name, "kafka.partitions": String(partitions),
                    "kafka.replication": String(replicationFactor),
                ])
        }
    }

    /// The blocking part; returns the topics it created.
    private static func createTopics(
        _ handle: RDKafkaHandle, _ names: [String], partitions: Int32, replicationFactor: Int32,
        timeoutMilliseconds: Int32
    ) throws -> [String] {
        var errorText = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
        for name in names {
            guard let topic = rd_kafka_NewTopic_new(name, partitions, replicationFactor, &errorText, errorText.count)
            else {
                throw GatehouseError(.configuration, "kafka topic \(name): \(RDKafka.string(errorText))")
            }
            newTopics.append(topic)
        }
        guard let queue = rd_kafka_queue_new(handle.pointer) else {
            throw GatehouseError(.internal, "rd_kafka_queue_new failed")
        }
        defer { rd_kafka_queue_destroy(queue) }
        guard let adminOptions = rd_kafka_AdminOptions_new(handle.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS) else {
            throw GatehouseError(.internal, "rd_kafka_AdminOptions_new failed")
        }
        defer { rd_kafka_AdminOptions_destroy(adminOptions) }
        _ = rd_kafka_AdminOptions_set_request_timeout(adminOptions, timeoutMilliseconds, &errorText, errorText.count)
        _ = rd_kafka_AdminOptions_set_operation_timeout(
            adminOptions, timeoutMilliseconds, &errorText, errorText.count)

        newTopics.withUnsafeMutableBufferPointer { buffer in
            rd_kafka_CreateTopics(handle.pointer, buffer.baseAddress, buffer.count, adminOptions, queue)
        }
        // The request timeout bounds the reply; a little more for the event to arrive.
        guard let event = rd_kafka_queue_poll(queue, timeoutMilliseconds + 2000) else {
            throw GatehouseError(
                .unavailable, "kafka did not answer CreateTopics within \(timeoutMilliseconds / 1000) s")
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR { throw RDKafka.error(eventError, "create topics") }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw GatehouseError(.internal, "kafka CreateTopics returned no result")
        }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return [] }
        var created: [String] = []
        for index in 0..<count {
            guard let topicResult = results[index] else { continue }
            let name = String(cString: rd_kafka_topic_result_name(topicResult))
            let code = rd_kafka_topic_result_error(topicResult)
            switch code {
            case RD_KAFKA_RESP_ERR_NO_ERROR: created.append(name)
            case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: continue
            default: throw RDKafka.error(code, "create topic \(name)")
            }
        }
        return created
    }
}
