import COpenSSL

/// AES key wrap for keys at rest: RFC 3394 (input a multiple of 8 bytes, at least 16)
/// and RFC 5649 with padding (any length from 1 byte). The KEK is AES-128 or AES-256.
///
/// Both carry a 64-bit integrity check: unwrapping under the wrong KEK, or a wrapped
/// value with any altered bit, fails with `CryptoError.unwrapFailed` and returns
/// nothing. Stateless and thread-safe.
public enum AESKeyWrap {
    /// Wraps `key` under `kek` (RFC 3394): 24 bytes for an AES-128 key, 40 for AES-256.
    public static func wrap(_ key: SymmetricKey, kek: SymmetricKey) throws(CryptoError) -> [UInt8] {
        try key.withUnsafeBytes { (raw) throws(CryptoError) -> [UInt8] in try run(.wrap, encrypt: true, raw, kek: kek) }
    }

    /// Unwraps a key wrapped by `wrap(_:kek:)`.
    /// - Throws: `CryptoError.unwrapFailed` when the KEK is wrong or the bytes were altered;
    ///   `.invalidInput` when the length cannot be a wrapped AES-128/256 key.
    public static func unwrap(_ wrapped: some Collection<UInt8>, kek: SymmetricKey) throws(CryptoError) -> SymmetricKey
    {
        guard wrapped.count == 24 || wrapped.count == 40 else {
            throw CryptoError(
                .invalidInput,
                "a wrapped AES key is 24 bytes (AES-128) or 40 bytes (AES-256), got \(wrapped.count)")
        }
        let input = Array(wrapped)
        var plain = try input.withBytes { (raw) throws(CryptoError) -> [UInt8] in
            try run(.wrap, encrypt: false, raw, kek: kek)
        }
        defer { SecureMemory.zero(&plain) }
        return try SymmetricKey(bytes: plain)
    }

    /// Wraps arbitrary bytes (RFC 3394): `data.count` must be a multiple of 8, at least 16.
    public static func wrap(bytes data: some Collection<UInt8>, kek: SymmetricKey) throws(CryptoError) -> [UInt8] {
        guard data.count >= 16, data.count % 8 == 0 else {
            throw CryptoError(.invalidInput, "RFC 3394 wraps a multiple of 8 bytes, at least 16; got \(data.count)")
        }
        var input = Array(data)
        defer { SecureMemory.zero(&input) }
        return try input.withBytes { (raw) throws(CryptoError) -> [UInt8] in
            try run(.wrap, encrypt: true, raw, kek: kek)
        }
    }

    /// Unwraps bytes wrapped by `wrap(bytes:kek:)`. The caller should wipe the result.
    public static func unwrap(bytes wrapped: some Collection<UInt8>, kek: SymmetricKey) throws(CryptoError) -> [UInt8] {
        guard wrapped.count >= 24, wrapped.count % 8 == 0 else {
            throw CryptoError(
                .invalidInput,
                "an RFC 3394 wrapped value is a multiple of 8 bytes, at least 24; got \(wrapped.count)")
        }
        let input = Array(wrapped)
        return try input.withBytes { (raw) throws(CryptoError) -> [UInt8] in
            try run(.wrap, encrypt: false, raw, kek: kek)
        }
    }

    /// Wraps 1 or more bytes with padding (RFC 5649).
    public static func wrapWithPadding(_ data: some Collection<UInt8>, kek: SymmetricKey) throws(CryptoError) -> [UInt8]
    {
        guard data.count >= 1 else { throw CryptoError(.invalidInput, "RFC 5649 wraps at least 1 byte") }
        var input = Array(data)
        defer { SecureMemory.zero(&input) }
        return try input.withBytes { (raw) throws(CryptoError) -> [UInt8] in
            try run(.wrapPad, encrypt: true, raw, kek: kek)
        }
    }

    /// Unwraps bytes wrapped by `wrapWithPadding(_:kek:)`. The caller should wipe the result.
    public static func unwrapWithPadding(_ wrapped: some Collection<UInt8>, kek: SymmetricKey) throws(CryptoError)
        -> [UInt8]
    {
        guard wrapped.count >= 16, wrapped.count % 8 == 0 else {
            throw CryptoError(
                .invalidInput,
                "an RFC 5649 wrapped value is a multiple of 8 bytes, at least 16; got \(wrapped.count)")
        }
        let input = Array(wrapped)
        return try input.withBytes { (raw) throws(CryptoError) -> [UInt8] in
            try run(.wrapPad, encrypt: false, raw, kek: kek)
        }
    }

    private static func run(_ mode: AESCipher, encrypt: Bool, _ input: UnsafeRawBufferPointer, kek: SymmetricKey)
        throws(CryptoError) -> [UInt8]
    {
        try kek.withUnsafeBytes { (k) throws(CryptoError) -> [UInt8] in
            try run(mode, encrypt: encrypt, input, kekBytes: k)
        }
    }

    /// The one EVP path for all four operations; `kekBytes` may be 16, 24 or 32 bytes
    /// (24 only reaches here from tests: the RFC 5649 examples use an AES-192 KEK).
    static func run(
        _ mode: AESCipher, encrypt: Bool, _ input: UnsafeRawBufferPointer,
        kekBytes: UnsafeRawBufferPointer
    ) throws(CryptoError) -> [UInt8] {
        let context = try EVPCipherContext.make()
        let ctx = context.pointer
        guard let cipher = mode.descriptor(keyByteCount: kekBytes.count) else {
            throw CryptoError(.invalidKey, "the KEK must be an AES-128 or AES-256 key")
        }
        // The wrap modes refuse to run through EVP unless the caller opts in.
        EVP_CIPHER_CTX_set_flags(ctx, Int32(EVP_CIPHER_CTX_FLAG_WRAP_ALLOW))
        let initialised =
            encrypt
            ? EVP_EncryptInit_ex(ctx, cipher, nil, kekBytes.u8, nil) == 1
            : EVP_DecryptInit_ex(ctx, cipher, nil, kekBytes.u8, nil) == 1
        guard initialised else { throw CryptoError.openSSL("EVP_CipherInit_ex (AES key wrap)") }
        var output = [UInt8](repeating: 0, count: input.count + 16)
        var n: Int32 = 0
        let updated = output.withUnsafeMutableBytes { out in
            encrypt
                ? EVP_EncryptUpdate(ctx, out.u8, &n, input.u8, Int32(input.count))
                : EVP_DecryptUpdate(ctx, out.u8, &n, input.u8, Int32(input.count))
        }
        guard updated == 1, n > 0 else {
            SecureMemory.zero(&output)
            if encrypt { throw CryptoError.openSSL("EVP_EncryptUpdate (AES key wrap)") }
            CryptoError.clearOpenSSLQueue()
            throw CryptoError(
                .unwrapFailed,
                "AES key unwrap failed its integrity check: the KEK is wrong or the wrapped key was altered")
        }
        let result = Array(output[0..<Int(n)])
        SecureMemory.zero(&output)
        return result
    }
}
