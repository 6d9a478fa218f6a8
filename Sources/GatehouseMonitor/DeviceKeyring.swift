import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseStore

/// The keys the monitor decrypts with, indexed by the 64-bit unique address the EMM
/// header carries (`DeviceAddress.unique(deviceID:)`), so a section is matched to its
/// device without trying keys.
public struct DeviceKeyring: Sendable, Equatable {
    public private(set) var byAddress: [UInt64: MonitorDeviceKey] = [:]

    public init(_ keys: [MonitorDeviceKey] = []) {
        for key in keys { byAddress[DeviceAddress.unique(deviceID: key.deviceID)] = key }
    }

    public var count: Int { byAddress.count }

    public func key(forAddress address: UInt64) -> MonitorDeviceKey? { byAddress[address] }

    /// This keyring with `other`'s entries added (`other` wins for the same device).
    public func merging(_ other: DeviceKeyring) -> DeviceKeyring {
        var copy = self
        for (address, key) in other.byAddress { copy.byAddress[address] = key }
        return copy
    }

    /// Reads every active device's current key from the store and unwraps it with the KEK.
    ///
    /// A key that does not unwrap (another KEK, a damaged row) is skipped and counted;
    /// the device id goes to the log, never the key or its wrapped form.
    /// - Returns: the keyring and the number of keys that failed to unwrap.
    public static func load(from database: any SQLDatabase, kek: SymmetricKey, logger: Logger) async throws
        -> (keyring: DeviceKeyring, failures: Int)
    {
        let rows = try await database.read { connection in
            try connection.query(
                """
                SELECT d.device_id, k.version, k.wrapped_key FROM devices d
                JOIN device_keys k ON k.device_id = d.device_id AND k.version = d.key_version
                WHERE d.status = 'active'
                """)
        }
        var keys: [MonitorDeviceKey] = []
        var failures = 0
        for row in rows {
            let deviceID = try row.text("device_id")
            do {
                let key = try AESKeyWrap.unwrap(try row.blob("wrapped_key"), kek: kek)
                keys.append(
                    MonitorDeviceKey(deviceID: deviceID, key: key, keyVersion: UInt16(clamping: try row.int("version")))
                )
            } catch {
                failures += 1
                logger.warning("monitor.keys.unwrap_failed", ["device.id": deviceID])
            }
        }
        return (DeviceKeyring(keys), failures)
    }
}
