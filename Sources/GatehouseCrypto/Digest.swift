import COpenSSL

/// SHA-256 (FIPS 180-4) over libcrypto's `EVP_Digest`. Stateless and thread-safe.
public enum SHA256 {
    public static let byteCount = 32

    /// The 32-byte digest of `data`.
    /// - Throws: `CryptoError.library` only if libcrypto itself fails (no SHA-256 provider).
    public static func hash(_ data: UnsafeRawBufferPointer) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: byteCount)
        var length: UInt32 = 0
        guard EVP_Digest(data.baseAddress, data.count, &out, &length, EVP_sha256(), nil) == 1, length == 32 else {
            throw CryptoError.openSSL("EVP_Digest (SHA-256)")
        }
        return out
    }

    public static func hash(_ data: some Collection<UInt8>) throws(CryptoError) -> [UInt8] {
        let bytes = Array(data)
        return try bytes.withBytes { (raw) throws(CryptoError) -> [UInt8] in try hash(raw) }
    }

    /// The digest of a string's UTF-8 bytes (e.g. an API token) in lowercase hex.
    public static func hexDigest(of text: String) throws(CryptoError) -> String {
        Hex.encode(try hash(Array(text.utf8)))
    }
}

/// HMAC-SHA256 (RFC 2104) over libcrypto's one-shot `HMAC`. Stateless and thread-safe.
public enum HMACSHA256 {
    public static let byteCount = 32

    /// The 32-byte MAC of `data` under `key` (any length).
    public static func authenticationCode(for data: some Collection<UInt8>, key: some Collection<UInt8>)
        throws(CryptoError) -> [UInt8]
    {
        var keyBytes = Array(key)
        defer { SecureMemory.zero(&keyBytes) }
        let bytes = Array(data)
        var out = [UInt8](repeating: 0, count: byteCount)
        var length: UInt32 = 0
        guard keyBytes.count <= Int(Int32.max) else { throw CryptoError(.invalidInput, "HMAC key is too long") }
        let ok = keyBytes.withUnsafeBytes { k in
            bytes.withUnsafeBytes { d in
                HMAC(
                    EVP_sha256(), k.baseAddress, Int32(k.count), d.u8, d.count,
                    &out, &length) != nil
            }
        }
        guard ok, length == 32 else { throw CryptoError.openSSL("HMAC (SHA-256)") }
        return out
    }

    /// Whether `mac` is the MAC of `data` under `key`, compared in constant time.
    public static func isValid(
        _ mac: some Collection<UInt8>, for data: some Collection<UInt8>,
        key: some Collection<UInt8>
    ) throws(CryptoError) -> Bool {
        ConstantTime.isEqual(Array(mac), try authenticationCode(for: data, key: key))
    }
}

/// Comparison whose running time does not depend on where two secrets differ.
public enum ConstantTime {
    /// `true` when both buffers have the same length and bytes (`CRYPTO_memcmp`).
    /// The length itself is not treated as secret.
    public static func isEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        return CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
    }

    public static func isEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        let x = Array(a)
        let y = Array(b)
        return x.withUnsafeBytes { p in y.withUnsafeBytes { q in isEqual(p, q) } }
    }
}
