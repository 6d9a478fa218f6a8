import Foundation
import GatehouseAPI
import GatehouseBus
import GatehouseCore
import GatehouseMonitor
import GatehousePlayout
import GatehouseStore

extension Bootstrap {
    func playoutService() throws -> PlayoutService {
        PlayoutService(
            configuration: try PlayoutConfiguration.load(from: settings.source), database: database, metrics: metrics,
            logger: logger.with(label: "playout"))
    }

    /// The monitor, fed the device keys from the store (unwrapped with the KEK) and any
    /// configured ones; its `bus` actions go to the monitor-events topic.
    func monitorService(kek: KeyEncryptionKey?, producer: (any BusProducer)?) throws -> MonitorService {
        let topic = settings.source.string("GATEHOUSE_MONITOR_EVENTS_TOPIC", default: "gatehouse.monitor.events")
        var configuration = try MonitorConfiguration.load(from: settings.source)
        if settings.source.string("GATEHOUSE_MONITOR_KEYS_REFRESH_SECONDS") == nil {
            // Beside the store, new devices should be decryptable within seconds of registering.
            configuration.keysRefreshSeconds = 5
        }
        return MonitorService(
            configuration: configuration, logger: logger,
            eventSink: producer.map { BusEventSink(producer: $0, topic: topic) }, database: database, kek: kek?.key)
    }
}

/// Monitor events (conditions firing and clearing) published on the bus as JSON.
struct BusEventSink: MonitorEventSink {
    let producer: any BusProducer
    let topic: String

    func publish(_ event: MonitorEvent) async throws {
        var fields = event.labels
        fields["rule"] = event.rule
        fields["condition"] = event.condition
        fields["state"] = event.state.rawValue
        fields["value"] = String(event.value)
        fields["time"] = String(event.time)
        try await producer.publish(topic: topic, key: event.rule, value: Array(JSONLine.encode(fields).utf8))
    }
}

/// Closes the loop: when the monitor decrypts an EMM on air for the first time, the
/// request that caused it gets its `on_air_at`, so `GET /requests/{id}` proves broadcast
/// and shows the time to air.
struct OnAirRecorder: GatehouseService {
    let name = "on-air"
    let monitor: MonitorService
    let database: any SQLDatabase
    let logger: Logger

    func run() async throws {
        var pending: [(String, Int64, Int64)] = []
        var lastFlush = ContinuousClock.now
        for await observation in monitor.observations {
            pending.append((observation.deviceID, Int64(observation.sequenceNumber), Int64(observation.seenAt * 1000)))
            if pending.count >= 200 || ContinuousClock.now - lastFlush > .milliseconds(200) {
                try await flush(pending)
                pending.removeAll(keepingCapacity: true)
                lastFlush = ContinuousClock.now
            }
            if Task.isCancelled { break }
        }
        if !pending.isEmpty { try? await flush(pending) }
    }

    private func flush(_ batch: [(String, Int64, Int64)]) async throws {
        do {
            try await database.transaction { connection in
                for (device, sequence, seenAt) in batch {
                    try connection.execute(
                        """
                        UPDATE requests SET on_air_at = ?
                        WHERE on_air_at IS NULL AND request_id = (
                            SELECT request_id FROM emms WHERE device_id = ? AND sequence = ?)
                        """, .int64(seenAt), .text(device), .int64(sequence))
                }
            }
        } catch {
            logger.warning("monitor.on_air_update_failed", ["error": String(describing: error)])
        }
    }
}

/// `gatehouse monitor`: watches the EMM multicast group.
public enum MonitorCommand: Subcommand {
    public static let name = "monitor"
    public static let summary = "watch the EMM multicast: decrypt, check, measure bandwidth, push metrics"
    public static let usage = """
        usage: gatehouse monitor [--config FILE] [--no-store]
          Serves /metrics on GATEHOUSE_MONITOR_HTTP_ADDR (default 127.0.0.1:9464) and pushes to
          GATEHOUSE_PUSHGATEWAY_URL when set. Device keys: GATEHOUSE_MONITOR_KEYS / _KEYS_FILE, and (unless
          --no-store) the store's keys unwrapped with GATEHOUSE_KEK_FILE; it then also records on-air times.
        """

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        let noStore = rest.contains("--no-store")
        guard rest.allSatisfy({ $0 == "--no-store" }) else { throw UsageError("unknown option \(rest[0])") }
        var logger = context.logger
        logger.minimumLevel = settings.logLevel
        if noStore {
            let monitor = MonitorService(
                configuration: try MonitorConfiguration.load(from: settings.source), logger: logger)
            let metrics = MetricsServer(
                registry: monitor.metrics,
                address: settings.source.string("GATEHOUSE_MONITOR_HTTP_ADDR", default: "127.0.0.1:9464"), logger: logger)
            try await ServiceRunner(services: [monitor, try metrics.make()], logger: logger).run()
            return 0
        }
        let boot = try await Bootstrap.make(settings, context: context)
        let kek = try boot.kek(createIfMissing: false)
        let bus = try boot.busSettings()
        let producer = try await boot.busProducer(bus)
        let monitor = try boot.monitorService(kek: kek, producer: producer)
        let metrics = MetricsServer(
            registry: monitor.metrics,
            address: settings.source.string("GATEHOUSE_MONITOR_HTTP_ADDR", default: "127.0.0.1:9464"), logger: logger)
        try await ServiceRunner(
            services: [monitor, OnAirRecorder(monitor: monitor, database: boot.database, logger: boot.logger),
                       try metrics.make()],
            logger: boot.logger
        ).run {
            await producer.close()
            await boot.database.close()
        }
        return 0
    }
}

extension MonitorService: GatehouseService {
    public var name: String { "monitor" }
}

/// `gatehouse playout`: the EMM carousel on UDP multicast.
public enum PlayoutCommand: Subcommand {
    public static let name = "playout"
    public static let summary = "run the EMM carousel: stored EMMs as MPEG-TS on UDP multicast"
    public static let usage = """
        usage: gatehouse playout [--config FILE]
        settings: GATEHOUSE_EMM_GROUP, GATEHOUSE_MULTICAST_INTERFACE, GATEHOUSE_EMM_BITRATE, GATEHOUSE_EMM_PID,
                  GATEHOUSE_CA_SYSTEM_ID, ... (docs/configuration.md)
        """

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        guard rest.isEmpty else { throw UsageError("unknown option \(rest[0])") }
        let boot = try await Bootstrap.make(settings, context: context)
        try await ServiceRunner(services: [try boot.playoutService()], logger: boot.logger).run {
            await boot.database.close()
        }
        return 0
    }
}
