import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseStore
import GatehouseTestSupport
import Testing

@testable import GatehouseMonitor

@Suite("Monitor keys from the store")
struct MonitorStoreKeyTests {
    @Test("Active devices' current keys are unwrapped with the KEK; bad wraps are skipped, not logged in clear")
    func loadFromStore() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gh-monitor-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (logger, lines) = memoryLogger()
        let database = try await SQLiteDatabase.open(
            SQLiteDatabase.Configuration(path: directory.appendingPathComponent("db.sqlite").path), logger: logger)
        _ = try await Migrator(logger: logger).migrate(database)
        let kek = try SymmetricKey.random(size: .bits256)
        let otherKEK = try SymmetricKey.random(size: .bits256)
        let rows: [(String, String, Int, SymmetricKey, SymmetricKey)] = [
            ("stb-1", "active", 2, key1, kek),  // current version 2
            ("stb-2", "suspended", 1, key2, kek),  // not active: left out
            ("stb-3", "active", 1, key2, otherKEK),  // wrapped under another KEK: skipped
        ]
        let wrapped = try rows.map { try AESKeyWrap.wrap($0.3, kek: $0.4) }
        let oldWrapped = try AESKeyWrap.wrap(wrongKey, kek: kek)
        try await database.transaction { connection in
            for (index, row) in rows.enumerated() {
                try connection.execute(
                    "INSERT INTO devices (device_id, status, key_version, next_emm_sequence, created_at, updated_at) VALUES (?, ?, ?, 0, 0, 0)",
                    .text(row.0), .text(row.1), .int64(Int64(row.2)))
                try connection.execute(
                    "INSERT INTO device_keys (device_id, version, wrapped_key, kcv, created_at) VALUES (?, ?, ?, 'x', 0)",
                    .text(row.0), .int64(Int64(row.2)), .blob(wrapped[index]))
            }
            // An older version of stb-1's key: not the current one.
            try connection.execute(
                "INSERT INTO device_keys (device_id, version, wrapped_key, kcv, created_at) VALUES ('stb-1', 1, ?, 'x', 0)",
                .blob(oldWrapped))
        }
        let (keyring, failures) = try await DeviceKeyring.load(from: database, kek: kek, logger: logger)
        // The service loads the same keys at start and merges the configured ones.
        var configuration = MonitorConfiguration(group: testGroup(20), instance: "keys")
        configuration.keys = [MonitorDeviceKey(deviceID: "configured", key: key2)]
        let service = MonitorService(configuration: configuration, logger: logger, database: database, kek: kek)
        let task = Task { try await service.run() }
        #expect(await eventually(5) { service.snapshot().keyCount == 2 })
        task.cancel()
        try await task.value
        await database.close()
        #expect(failures == 1)
        #expect(keyring.count == 1)
        let entry = try #require(keyring.key(forAddress: DeviceAddress.unique(deviceID: "stb-1")))
        #expect(entry.deviceID == "stb-1" && entry.keyVersion == 2 && entry.key == key1)
        #expect(lines.lines.contains { $0.contains("monitor.keys.unwrap_failed") && $0.contains("stb-3") })
        #expect(!lines.lines.contains { $0.contains(key2.unsafeHexString()) || $0.contains(key1.unsafeHexString()) })
    }
}
