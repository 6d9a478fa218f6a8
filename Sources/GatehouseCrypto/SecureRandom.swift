import COpenSSL

/// Cryptographically secure random bytes from OpenSSL's DRBG (`RAND_bytes`).
/// Thread-safe: OpenSSL 3 keeps one DRBG per thread.
public enum SecureRandom {
    /// Fills `buffer` with random bytes.
    /// - Throws: `CryptoError.randomUnavailable` when the generator is not seeded or
    ///   its entropy source failed; never fall back to a weaker source.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard buffer.count > 0 else { return }
        guard buffer.count <= Int(Int32.max),
            RAND_bytes(buffer.u8, Int32(buffer.count)) == 1
        else {
            throw CryptoError.openSSL(
                "RAND_bytes", code: .randomUnavailable,
                hint: "the system random generator is unavailable; check /dev/urandom and the OpenSSL configuration")
        }
    }

    /// `count` random bytes.
    public static func bytes(count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withMutableBytes { (raw) throws(CryptoError) in try fill(raw) }
        return out
    }

    /// A random `UInt64`.
    public static func uint64() throws(CryptoError) -> UInt64 {
        var value: UInt64 = 0
        try withUnsafeMutableBytes(of: &value) { (raw) throws(CryptoError) in try fill(raw) }
        return value
    }

    /// A random `UInt32`.
    public static func uint32() throws(CryptoError) -> UInt32 {
        var value: UInt32 = 0
        try withUnsafeMutableBytes(of: &value) { (raw) throws(CryptoError) in try fill(raw) }
        return value
    }
}

/// Wiping buffers that held key material or plaintext.
public enum SecureMemory {
    /// Overwrites every byte with zero in a way the optimiser cannot remove (`OPENSSL_cleanse`).
    public static func zero(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { zero($0) }
    }

    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        OPENSSL_cleanse(base, buffer.count)
    }
}
