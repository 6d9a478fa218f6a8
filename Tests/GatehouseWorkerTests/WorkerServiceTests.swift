import Foundation
import GatehouseBus
import GatehouseCore
import GatehouseCrypto
import GatehouseDomain
import GatehouseStore
import GatehouseTestSupport
import GatehouseWorker
import Testing

/// The worker service around the applier: what it does when the bus misbehaves.
@Suite("Worker service")
struct WorkerServiceTests {
    /// A command registering `deviceID` with a fresh key, as the API builds it.
    private func registration(of deviceID: String, in harness: CommandApplierTests.Harness) throws -> Command {
        let key = try SymmetricKey.random(size: .bits128)
        return Command(
            requestID: UUID().uuidString, actor: "test", acceptedAt: ISO8601.nowMillis(),
            action: .registerDeviceKey(
                deviceID: deviceID, wrappedKey: Data(try AESKeyWrap.wrap(key, kek: harness.kek)),
                kcv: key.keyCheckValue, keyBits: 128))
    }

    /// A Kafka consumer that stopped polling for `max.poll.interval.ms` has left its group,
    /// and every commit it tries is refused until it rejoins. The worker must not retry for
    /// ever while looking alive: past its commit timeout it stops with an error (its
    /// supervisor restarts it), and what it applied stays applied.
    @Test
    func refusedOffsetCommitsStopTheWorkerAndKeepItsWork() async throws {
        let harness = try await CommandApplierTests.Harness.make(.sqlite)
        // The bus in another database, so offsets are committed on their own, as on Kafka.
        let busStore = try await TestDatabases.make(.sqlite)
        defer {
            Task {
                await busStore.close()
                await harness.handle.close()
            }
        }
        let command = try registration(of: "stb-commit", in: harness)
        try await harness.storeRequest(command)
        let settings = BusSettings()
        let producer = try await Bus.makeProducer(settings, database: busStore.database, logger: .disabled)
        try await producer.publish(topic: settings.commandsTopic, key: "stb-commit", value: try command.encoded())
        // Every offset commit is refused from now on.
        try await busStore.database.withConnection { connection in
            for event in ["INSERT", "UPDATE"] {
                try connection.execute(
                    "CREATE TRIGGER refuse_commit_\(event) BEFORE \(event) ON bus_offsets "
                        + "BEGIN SELECT RAISE(ABORT, 'this member has left its group'); END", [])
            }
        }
        let consumer = try await Bus.makeConsumer(settings, database: busStore.database, logger: .disabled)
        var options = WorkerService.Options()
        options.commitTimeout = .milliseconds(500)
        options.retryBackoff = .milliseconds(50)
        let worker = WorkerService(
            applier: harness.applier, consumer: consumer, producer: producer, deadLetterTopic: settings.deadLetterTopic,
            options: options, metrics: MetricsRegistry(), logger: .disabled)

        let run = Task { try await worker.run() }
        let watchdog = Task {
            try await Task.sleep(for: .seconds(60))
            run.cancel()  // a worker still retrying after a minute: end the test, which fails below
        }
        let error = await #expect(throws: GatehouseError.self) { try await run.value }
        watchdog.cancel()
        #expect(error?.code == .bus)
        #expect(error?.message.contains("restart") == true)
        #expect(try await harness.requestStatus(command.requestID).0 == "processed")
    }

    /// A command of a kind this worker does not know (a newer API wrote it) cannot be
    /// applied: it goes to the dead-letter topic, its request is marked failed with the
    /// reason (not left `accepted` for ever), and the commands behind it are applied.
    @Test
    func aCommandOfAnUnknownKindFailsItsRequestAndTheNextIsApplied() async throws {
        let harness = try await CommandApplierTests.Harness.make(.sqlite)
        defer { Task { await harness.handle.close() } }
        let unknownID = UUID().uuidString
        let unknown = Command(requestID: unknownID, actor: "test", acceptedAt: 1, action: .cancelEntitlement(deviceID: "x", productID: 1))
        try await harness.storeRequest(unknown)
        let next = try registration(of: "stb-next", in: harness)
        try await harness.storeRequest(next)
        let settings = BusSettings()
        let producer = try await Bus.makeProducer(settings, database: harness.database, logger: .disabled)
        let fromTheFuture = #"{"acceptedAt":1,"action":{"launchRocket":{}},"actor":"test","requestID":"\#(unknownID)"}"#
        try await producer.publish(topic: settings.commandsTopic, key: "*", value: Array(fromTheFuture.utf8))
        try await producer.publish(topic: settings.commandsTopic, key: "stb-next", value: try next.encoded())
        let consumer = try await Bus.makeConsumer(settings, database: harness.database, logger: .disabled)
        let worker = WorkerService(
            applier: harness.applier, consumer: consumer, producer: producer, deadLetterTopic: settings.deadLetterTopic,
            metrics: MetricsRegistry(), logger: .disabled)
        let run = Task { try await worker.run() }
        defer { run.cancel() }
        var statuses: [String] = []
        for _ in 0..<1000 {
            statuses = [
                try await harness.requestStatus(unknownID).0, try await harness.requestStatus(next.requestID).0,
            ]
            if statuses == ["failed", "processed"] { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(statuses == ["failed", "processed"])
        #expect(try await harness.requestStatus(unknownID).1?.contains("dead-letter") == true)
        let deadLetters = try await harness.database.read { connection in
            try connection.query("SELECT payload FROM bus_messages WHERE topic = ?", .text(settings.deadLetterTopic))
                .map { try DeadLetter.decode(try $0.blob("payload")) }
        }
        #expect(deadLetters.count == 1)
        #expect(deadLetters.first?.reason.contains("undecodable") == true)
    }
}
