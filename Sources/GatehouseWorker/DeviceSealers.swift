import GatehouseCrypto
import GatehouseEMM

/// The worker's EMM sealers, one per device, kept between commands and batches.
///
/// Building a sealer from a stored key costs an AES key unwrap (a libcrypto context and the
/// KEK's key schedule), the key check value of the unwrapped key (another context), two
/// AES-GCM contexts, and the device's SHA-256 address: about as much CPU as the rest of an
/// `add_entitlement`. A command for a device whose sealer is here costs none of it.
///
/// Correctness never rests on the cache: every command still reads the device's current
/// key version and wrapped key in its own transaction, and an entry is used only when both
/// are byte-for-byte what the entry was built from (unwrapping is a pure function of the
/// wrapped bytes and the KEK, which is fixed for the applier). A rotation stores a new
/// wrapped key, so the next command simply builds a new entry.
///
/// Keys in memory: the worker already holds the KEK, which unwraps every device key, so
/// keeping at most `capacity` unwrapped keys adds no exposure; each `SymmetricKey` wipes
/// its bytes and each AES-GCM context cleanses its key schedule when evicted.
///
/// Not `Sendable` (sealers own `EVP_CIPHER_CTX`s): `CommandApplier` keeps it in a `Mutex`
/// and seals while holding it.
final class DeviceSealers {
    struct Entry {
        var keyVersion: Int
        var wrappedKey: [UInt8]
        var sealer: EMMSealer
        var addressing: EMMAddressing
        var lastUse: UInt64
    }

    let capacity: Int
    private(set) var entries: [String: Entry] = [:]
    /// One pool for every sealer: one `RAND_bytes` call per 1,024 EMMs.
    let salts = NonceSaltPool(capacity: 1024)
    private var clock: UInt64 = 0
    /// Sealers built (cache misses), for tests.
    private(set) var built = 0

    init(capacity: Int) {
        precondition(capacity > 0, "the sealer cache holds at least one device")
        self.capacity = capacity
    }

    /// Seals `emm` for `deviceID` under the key stored as `wrappedKey` (version `keyVersion`),
    /// building the device's sealer first if it is missing or was built from another key.
    /// `makeEMM` receives the device's addressing.
    /// - Throws: `CryptoError` when the wrapped key does not unwrap under `kek` (altered,
    ///   or another KEK); `EMMError` when the EMM cannot be sealed.
    func seal(
        deviceID: String, keyVersion: Int, wrappedKey: [UInt8], kek: SymmetricKey,
        _ makeEMM: (EMMAddressing) -> EMM
    ) throws -> [UInt8] {
        clock &+= 1
        if var entry = entries[deviceID], entry.keyVersion == keyVersion, entry.wrappedKey == wrappedKey {
            entry.lastUse = clock
            entries[deviceID] = entry
            return try entry.sealer.seal(makeEMM(entry.addressing))
        }
        let key = try AESKeyWrap.unwrap(wrappedKey, kek: kek)
        let sealer = try EMMSealer(key: key, keyVersion: UInt16(keyVersion), saltPool: salts)
        let addressing = DeviceAddress.addressing(deviceID: deviceID)
        built += 1
        if entries[deviceID] == nil, entries.count >= capacity { evictOldHalf() }
        entries[deviceID] = Entry(
            keyVersion: keyVersion, wrappedKey: wrappedKey, sealer: sealer, addressing: addressing, lastUse: clock)
        return try sealer.seal(makeEMM(addressing))
    }

    /// Drops the least recently used half, so a full cache costs one sort per `capacity / 2`
    /// new devices rather than a search per insert.
    private func evictOldHalf() {
        let keep = capacity / 2
        guard keep > 0 else {
            entries.removeAll(keepingCapacity: true)
            return
        }
        let cutoff = entries.values.map(\.lastUse).sorted(by: >)[keep - 1]
        entries = entries.filter { $0.value.lastUse >= cutoff }
    }
}
