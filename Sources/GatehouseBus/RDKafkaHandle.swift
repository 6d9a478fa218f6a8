import CRdKafka
import Foundation
import GatehouseCore

/// librdkafka errors and log levels, mapped in one place each.
enum RDKafka {
    /// A `GatehouseError` for a librdkafka error code: `operation` names the call, the
    /// text is `rd_kafka_err2str` (never message contents).
    static func error(_ code: rd_kafka_resp_err_t, _ operation: String, file: String = #fileID, line: Int = #line)
        -> GatehouseError
    {
        let text = String(cString: rd_kafka_err2str(code))
        let transient: Set<Int32> = [
            RD_KAFKA_RESP_ERR__TRANSPORT.rawValue, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue,
            RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue, RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue,
            RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT.rawValue,
            RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS.rawValue, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION.rawValue,
            RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE.rawValue,
        ]
        return GatehouseError(
            transient.contains(code.rawValue) ? .unavailable : .bus, "kafka \(operation): \(text)",
            nativeCode: Int(code.rawValue), file: file, line: line)
    }

    /// The text in a NUL-terminated error buffer that librdkafka filled in.
    static func string(_ buffer: [CChar]) -> String {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// librdkafka logs with syslog levels (0 emergency … 7 debug).
    static func logLevel(syslog level: Int32) -> LogLevel {
        switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    }
}

/// What librdkafka's callbacks need, reached through the handle's opaque pointer
/// (`rd_kafka_conf_set_opaque`). The handle retains it and releases it after
/// `rd_kafka_destroy`, when no callback can run any more.
final class RDKafkaContext: Sendable {
    let logger: Logger
    init(logger: Logger) { self.logger = logger }

    static func from(_ opaque: UnsafeMutableRawPointer?) -> RDKafkaContext? {
        opaque.map { Unmanaged<RDKafkaContext>.fromOpaque($0).takeUnretainedValue() }
    }
}

/// One `rd_kafka_t` (producer or consumer).
///
/// `@unchecked Sendable`: librdkafka documents `rd_kafka_t` as thread-safe; the pointer
/// itself never changes, and `deinit` runs once nothing else holds the handle.
final class RDKafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    private let context: Unmanaged<RDKafkaContext>
    let kind: rd_kafka_type_t

    private init(pointer: OpaquePointer, context: Unmanaged<RDKafkaContext>, kind: rd_kafka_type_t) {
        self.pointer = pointer
        self.context = context
        self.kind = kind
    }

    /// Builds a configuration from `properties` (later keys of `overrides` win), installs the
    /// log callback, lets `configure` add more callbacks, and creates the handle.
    /// - Throws: `GatehouseError.configuration` naming a rejected property (never its value,
    ///   which may be a password), or the `rd_kafka_new` error.
    static func make(
        kind: rd_kafka_type_t, properties: [String: String], logger: Logger,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws -> RDKafkaHandle {
        guard let conf = rd_kafka_conf_new() else { throw GatehouseError(.internal, "rd_kafka_conf_new failed") }
        var errorText = [CChar](repeating: 0, count: 512)
        for (name, value) in properties.sorted(by: { $0.key < $1.key }) {
            let result = rd_kafka_conf_set(conf, name, value, &errorText, errorText.count)
            guard result == RD_KAFKA_CONF_OK else {
                rd_kafka_conf_destroy(conf)
                throw GatehouseError(
                    .configuration, "kafka property \(name) was rejected by librdkafka",
                    nativeCode: Int(result.rawValue))
            }
        }
        let context = Unmanaged.passRetained(RDKafkaContext(logger: logger))
        rd_kafka_conf_set_opaque(conf, context.toOpaque())
        rd_kafka_conf_set_log_cb(conf) { handle, level, facility, message in
            // Runs on librdkafka's threads; the context outlives every callback (see deinit).
            guard let handle, let context = RDKafkaContext.from(rd_kafka_opaque(handle)) else { return }
            let ourLevel = RDKafka.logLevel(syslog: level)
            guard context.logger.isEnabled(ourLevel) else { return }
            context.logger.log(
                ourLevel, "librdkafka",
                [
                    "kafka.facility": facility.map { String(cString: $0) } ?? "",
                    "kafka.message": message.map { String(cString: $0) } ?? "",
                ])
        }
        configure(conf)
        guard let pointer = rd_kafka_new(kind, conf, &errorText, errorText.count) else {
            // rd_kafka_new owns `conf` only when it succeeds.
            rd_kafka_conf_destroy(conf)
            context.release()
            let detail = RDKafka.string(errorText)
            logger.error("kafka client could not be created", ["kafka.error": detail])
            throw GatehouseError(.configuration, "kafka client could not be created: \(detail)")
        }
        return RDKafkaHandle(pointer: pointer, context: context, kind: kind)
    }

    deinit {
        // After rd_kafka_destroy returns no callback runs, so the context can go.
        rd_kafka_destroy(pointer)
        context.release()
    }
}

/// librdkafka error numbers the tests and callers compare against (`GatehouseError.nativeCode`).
enum RDKafkaCode {
    static let messageTimedOut = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT.rawValue
}
