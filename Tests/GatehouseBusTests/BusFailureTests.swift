import Foundation
import GatehouseCore
import GatehouseStore
import Synchronization
import Testing

@testable import GatehouseBus

/// Keeps every log line, for checks on what was (not) logged.
final class LineSink: LogSink {
    private let storage = Mutex<[String]>([])
    func write(_ line: String) { storage.withLock { $0.append(line) } }
    var lines: [String] { storage.withLock { $0 } }
}

@Suite
struct BusFailureTests {
    /// Payloads may carry wrapped keys: no log line, at any level, may contain one.
    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func logsNeverContainPayloads(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let sink = LineSink()
            let logger = Logger(label: "bus-test", minimumLevel: .trace, sink: sink)
            let marker = "PAYLOAD-MARKER-\(UUID().uuidString)"
            try await insertRequest(bus.database, id: "\(bus.prefix)-r", key: "\(bus.prefix)-k", payload: bytes(marker))
            let producer = try await Bus.makeProducer(bus.settings, database: bus.database, logger: logger)
            let relay = OutboxRelay(
                database: bus.database, producer: producer, topic: bus.settings.commandsTopic, logger: logger)
            #expect(try await relay.runOnce() == 1)
            let consumer = try await Bus.makeConsumer(
                bus.settings, database: bus.database, logger: logger, kafkaOptions: BusTestEnvironment.kafkaOptions)
            let record = try #require(try await drain(consumer, count: 1).first)
            try await DeadLetter.publish(
                producer: producer, topic: bus.settings.deadLetterTopic, record: record, reason: "test", logger: logger)
            try await consumer.commit(record)
            await consumer.close()
            await producer.close()
            #expect(!sink.lines.isEmpty)
            #expect(
                sink.lines.allSatisfy {
                    !$0.contains(marker) && !$0.contains(Data(bytes(marker)).base64EncodedString())
                })
        }
    }

    /// With no broker, a publish fails within `message.timeout.ms` (nothing waits forever)
    /// with a retryable error, and closing afterwards is prompt.
    @Test(.timeLimit(.minutes(1)))
    func kafkaPublishWithoutABrokerFailsInTime() async throws {
        let logger = Logger(label: "bus-test", minimumLevel: .critical)
        let producer = try KafkaBusProducer.make(
            brokers: "127.0.0.1:1", options: ["message.timeout.ms": "1500"], logger: logger)
        let clock = ContinuousClock()
        let started = clock.now
        let error = try await #require(throws: GatehouseError.self) {
            try await producer.publish(topic: "nowhere", key: "k", value: [1])
        }
        #expect(error.code == .unavailable)
        #expect(error.nativeCode == Int(RDKafkaCode.messageTimedOut))
        #expect(started.duration(to: clock.now) < .seconds(10))
        await producer.close()
        await #expect(throws: GatehouseError.self) {
            try await producer.publish(topic: "nowhere", key: "k", value: [1])
        }
    }

    @Test
    func librdkafkaLevelsMapToOurs() {
        #expect(RDKafka.logLevel(syslog: 0) == .critical)
        #expect(RDKafka.logLevel(syslog: 3) == .error)
        #expect(RDKafka.logLevel(syslog: 4) == .warning)
        #expect(RDKafka.logLevel(syslog: 5) == .notice)
        #expect(RDKafka.logLevel(syslog: 6) == .info)
        #expect(RDKafka.logLevel(syslog: 7) == .debug)
    }

    @Test
    func rejectedKafkaPropertyIsNamedWithoutItsValue() throws {
        let error = try #require(throws: GatehouseError.self) {
            try KafkaBusProducer.make(
                brokers: "127.0.0.1:1", options: ["sasl.password.bogus": "hunter2"], logger: .disabled)
        }
        #expect(error.code == .configuration)
        #expect(error.message.contains("sasl.password.bogus") && !error.message.contains("hunter2"))
    }
}
