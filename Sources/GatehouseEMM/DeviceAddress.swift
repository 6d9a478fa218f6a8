import GatehouseCrypto

/// How a Gatehouse device id (a string of up to 64 characters, as the SMS knows it)
/// becomes the 64-bit unique address in the EMM header: the first 8 bytes of
/// SHA-256 of its UTF-8 bytes, big-endian. A set-top box that knows its own id computes
/// the same address and filters its EMMs without a key. Collisions need about 2^32
/// devices to become likely, and even then only cost a failed authentication on the
/// other box, never a wrong entitlement.
public enum DeviceAddress {
    public static func unique(deviceID: String) -> UInt64 {
        // SHA-256 over libcrypto only fails if the library is broken; fall back to FNV-1a
        // so addressing never traps (the receiver uses this same function).
        guard let digest = try? SHA256.hash(Array(deviceID.utf8)) else {
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            for byte in deviceID.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            return hash
        }
        var value: UInt64 = 0
        for byte in digest.prefix(8) { value = value << 8 | UInt64(byte) }
        return value
    }

    /// The addressing of an EMM for one device.
    public static func addressing(deviceID: String) -> EMMAddressing { .unique(deviceID: unique(deviceID: deviceID)) }
}
