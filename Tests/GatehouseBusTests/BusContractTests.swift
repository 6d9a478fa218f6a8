import Foundation
import GatehouseBus
import GatehouseCore
import GatehouseStore
import Testing

/// The bus contract, the same on every backend.
@Suite
struct BusContractTests {
    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func publishPollRoundTripWithKeys(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let producer = try await bus.makeProducer()
            let consumer = try await bus.makeConsumer()
            let topic = bus.settings.commandsTopic
            let sent = [("stb-1", "alpha"), ("stb-2", "beta"), ("stb-1", "gamma"), ("*", "")]
            for (key, value) in sent { try await producer.publish(topic: topic, key: key, value: bytes(value)) }

            let records = try await drain(consumer, count: sent.count)
            try #require(records.count == sent.count)
            #expect(Set(records.map { "\($0.key)=\(text($0.value))" }) == Set(sent.map { "\($0)=\($1)" }))
            #expect(records.allSatisfy { $0.topic == topic })
            #expect(records.filter { $0.key == "stb-1" }.map { text($0.value) } == ["alpha", "gamma"])
            // Offsets grow within a partition.
            for partition in Set(records.map(\.partition)) {
                let offsets = records.filter { $0.partition == partition }.map(\.offset)
                #expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count)
            }
            // Nothing else arrives.
            #expect(try await consumer.poll(maxRecords: 10, timeout: .milliseconds(300)).isEmpty)
        }
    }

    @Test(.timeLimit(.minutes(3)), arguments: BusBackend.allCases)
    func perKeyOrderAcrossAThousandMessages(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let producer = try await bus.makeProducer()
            let consumer = try await bus.makeConsumer()
            let topic = bus.settings.commandsTopic
            let keys = (0..<10).map { "stb-\($0)" }
            var messages: [BusMessage] = []
            for sequence in 0..<100 {
                for key in keys {
                    messages.append(BusMessage(topic: topic, key: key, value: bytes("\(key)#\(sequence)")))
                }
            }
            // Half as batches, half one by one (both paths must keep the order).
            for chunk in stride(from: 0, to: 500, by: 100) {
                try await producer.publish(batch: Array(messages[chunk..<chunk + 100]))
            }
            for message in messages[500...] {
                try await producer.publish(topic: topic, key: message.key, value: message.value)
            }
            try await producer.flush()

            let records = try await drain(consumer, count: 1000, timeout: .seconds(60))
            #expect(records.count == 1000)
            for key in keys {
                let values = records.filter { $0.key == key }.map { text($0.value) }
                #expect(values == (0..<100).map { "\(key)#\($0)" }, "order of \(key)")
                #expect(Set(records.filter { $0.key == key }.map(\.partition)).count == 1, "\(key) in one partition")
            }
        }
    }

    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func commitThenNewConsumerResumesAfterIt(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let producer = try await bus.makeProducer()
            let topic = bus.settings.commandsTopic
            for index in 0..<10 { try await producer.publish(topic: topic, key: "stb-7", value: bytes("m\(index)")) }

            let first = try await bus.makeConsumer(group: "g")
            let seen = try await drain(first, count: 10)
            try #require(seen.map { text($0.value) } == (0..<10).map { "m\($0)" })
            try await first.commit(seen[5])  // m0…m5 done
            await first.close()

            let second = try await bus.makeConsumer(group: "g")
            let rest = try await drain(second, count: 4)
            #expect(rest.map { text($0.value) } == ["m6", "m7", "m8", "m9"])
            #expect(rest.first?.offset == seen[6].offset)
            #expect(try await second.poll(maxRecords: 10, timeout: .milliseconds(500)).isEmpty)
            try await second.commit(rest[3])
            try await producer.publish(topic: topic, key: "stb-7", value: bytes("m10"))
            #expect(try await drain(second, count: 1).map { text($0.value) } == ["m10"])
            await second.close()

            // A group that never committed starts at the beginning.
            let other = try await bus.makeConsumer(group: "other")
            #expect(try await drain(other, count: 11).count == 11)
        }
    }

    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func uncommittedRecordsAreRedelivered(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let producer = try await bus.makeProducer()
            let topic = bus.settings.commandsTopic
            for index in 0..<5 { try await producer.publish(topic: topic, key: "stb-9", value: bytes("u\(index)")) }

            let first = try await bus.makeConsumer(group: "g")
            let seen = try await drain(first, count: 5)
            try #require(seen.count == 5)
            await first.close()  // crashed before committing anything

            let second = try await bus.makeConsumer(group: "g")
            let again = try await drain(second, count: 5)
            #expect(again.map { text($0.value) } == seen.map { text($0.value) })
            #expect(again.map(\.offset) == seen.map(\.offset))
        }
    }

    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func deadLetterCarriesTheOriginalAndTheReason(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let producer = try await bus.makeProducer()
            let topic = bus.settings.commandsTopic
            let poison: [UInt8] = [0x00, 0xFF, 0x7B, 0x22]
            try await producer.publish(topic: topic, key: "stb-3", value: poison)
            let consumer = try await bus.makeConsumer()
            let record = try #require(try await drain(consumer, count: 1).first)

            try await DeadLetter.publish(
                producer: producer, topic: bus.settings.deadLetterTopic, record: record,
                reason: "command does not decode", logger: bus.logger)
            try await consumer.commit(record)

            let dlq = try await bus.makeConsumer(group: "dlq-reader", topics: [bus.settings.deadLetterTopic])
            let dead = try #require(try await drain(dlq, count: 1).first)
            #expect(dead.key == "stb-3")
            let envelope = try DeadLetter.decode(dead.value)
            #expect(envelope.reason == "command does not decode")
            #expect(
                envelope.topic == topic && envelope.offset == record.offset && envelope.partition == record.partition)
            #expect(try envelope.originalValue() == poison)
        }
    }

    /// Publishers racing each other while a consumer reads: every message arrives exactly
    /// once. On MariaDB this checks that offsets commit in order (a reader that saw offset
    /// n+1 before n committed would skip n for good).
    @Test(.timeLimit(.minutes(2)), arguments: BusBackend.allCases)
    func concurrentPublishersLoseNothingWhileAConsumerReads(_ backend: BusBackend) async throws {
        try await withBus(backend) { bus in
            let producer = try await bus.makeProducer()
            let consumer = try await bus.makeConsumer()
            let topic = bus.settings.commandsTopic
            async let received = drain(consumer, count: 400, timeout: .seconds(60))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<8 {
                    group.addTask {
                        for index in 0..<50 {
                            try await producer.publish(
                                topic: topic, key: "w\(writer)", value: bytes("w\(writer)#\(index)"))
                        }
                    }
                }
                try await group.waitForAll()
            }
            let records = try await received
            #expect(records.count == 400)
            #expect(Set(records.map { text($0.value) }).count == 400)
            for writer in 0..<8 {
                let values = records.filter { $0.key == "w\(writer)" }.map { text($0.value) }
                #expect(values == (0..<50).map { "w\(writer)#\($0)" })
            }
        }
    }
}
