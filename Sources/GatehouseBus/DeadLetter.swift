import Foundation
import GatehouseCore

/// The dead-letter path for poison messages: a record the worker cannot apply (it does not
/// decode, or fails the same way every time) goes to the dead-letter topic with the reason,
/// so the worker can commit past it and the operator can inspect or replay it.
public enum DeadLetter {
    /// What a dead-letter message carries (JSON, one object): where the record came from,
    /// why it was given up, and its original value, base64-encoded.
    public struct Envelope: Codable, Sendable, Equatable {
        /// Layout version of this envelope; 1.
        public var version: Int
        public var reason: String
        public var topic: String
        public var partition: Int32
        public var offset: Int64
        public var key: String
        /// Milliseconds since the epoch (UTC).
        public var failedAt: Int64
        /// The original value, base64.
        public var payload: String

        /// The original value's bytes.
        /// - Throws: `GatehouseError.invalidInput` when `payload` is not base64.
        public func originalValue() throws -> [UInt8] {
            guard let data = Data(base64Encoded: payload) else {
                throw GatehouseError(.invalidInput, "dead-letter payload is not base64")
            }
            return Array(data)
        }
    }

    /// The longest reason kept; longer reasons are cut (they come from error messages).
    public static let maximumReasonLength = 1000

    /// Publishes `record` to the dead-letter `topic`, keyed like the original, and returns
    /// when the bus has it. Call it before committing the record.
    /// - Parameter reason: why the record is given up; must not quote the payload.
    public static func publish(
        producer: any BusProducer, topic: String, record: BusRecord, reason: String, logger: Logger? = nil
    ) async throws {
        let value = try envelope(for: record, reason: reason)
        try await producer.publish(topic: topic, key: record.key, value: value)
        logger?.warning(
            "bus record dead-lettered",
            [
                "bus.topic": record.topic, "bus.partition": String(record.partition),
                "bus.offset": String(record.offset),
                "bus.key": record.key, "bus.bytes": String(record.value.count), "bus.dlq": topic,
            ])
    }

    /// The encoded envelope for `record`.
    public static func envelope(for record: BusRecord, reason: String, at now: Date = Date()) throws -> [UInt8] {
        let envelope = Envelope(
            version: 1, reason: String(reason.prefix(maximumReasonLength)), topic: record.topic,
            partition: record.partition, offset: record.offset, key: record.key,
            failedAt: Int64((now.timeIntervalSince1970 * 1000).rounded(.down)),
            payload: Data(record.value).base64EncodedString())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(envelope))
    }

    /// Reads a dead-letter message.
    /// - Throws: `GatehouseError.invalidInput` when `value` is not an envelope.
    public static func decode(_ value: [UInt8]) throws -> Envelope {
        do {
            return try JSONDecoder().decode(Envelope.self, from: Data(value))
        } catch {
            throw GatehouseError(.invalidInput, "not a dead-letter envelope")
        }
    }
}
