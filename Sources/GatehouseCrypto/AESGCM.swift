import COpenSSL

/// AES-GCM (NIST SP 800-38D) with 128- or 256-bit keys, a 96-bit nonce and a
/// 128-bit tag: the authenticated encryption of EMM payloads.
///
/// The one-shot `seal`/`open` functions are stateless and thread-safe; they set up a
/// fresh context per call. Hot paths use `AESGCMCipher`, which keeps the key
/// schedule between messages.
///
/// - Important: a nonce must never repeat under one key. Repeating it reveals the
///   XOR of two plaintexts and lets anyone forge tags. See docs/crypto.md.
public enum AESGCM {
    public static let nonceByteCount = 12
    public static let tagByteCount = 16

    /// A 96-bit GCM nonce.
    public struct Nonce: Sendable, Hashable, CustomStringConvertible {
        public let bytes: [UInt8]

        /// - Throws: `CryptoError.invalidInput` unless `bytes` is exactly 12 bytes.
        public init(bytes: some Collection<UInt8>) throws(CryptoError) {
            guard bytes.count == AESGCM.nonceByteCount else {
                throw CryptoError(.invalidInput, "an AES-GCM nonce must be 12 bytes, got \(bytes.count)")
            }
            self.bytes = Array(bytes)
        }

        /// A nonce of 12 random bytes.
        public static func random() throws(CryptoError) -> Nonce {
            try Nonce(bytes: try SecureRandom.bytes(count: AESGCM.nonceByteCount))
        }

        public var description: String { Hex.encode(bytes) }
    }

    /// Ciphertext and tag, with the nonce they were made under.
    public struct SealedBox: Sendable, Equatable {
        public var nonce: Nonce
        public var ciphertext: [UInt8]
        public var tag: [UInt8]

        public init(nonce: Nonce, ciphertext: [UInt8], tag: [UInt8]) {
            self.nonce = nonce
            self.ciphertext = ciphertext
            self.tag = tag
        }

        /// nonce ‖ ciphertext ‖ tag.
        public var combined: [UInt8] { nonce.bytes + ciphertext + tag }
    }

    /// Encrypts and authenticates `plaintext`, also authenticating `associatedData`.
    public static func seal(
        _ plaintext: some Collection<UInt8>, using key: SymmetricKey, nonce: Nonce,
        authenticating associatedData: some Collection<UInt8> = [UInt8]()
    ) throws(CryptoError) -> SealedBox {
        let cipher = try AESGCMCipher(key: key)
        let input = Array(plaintext)
        let aad = Array(associatedData)
        var ciphertext = [UInt8](repeating: 0, count: input.count)
        var tag = [UInt8](repeating: 0, count: tagByteCount)
        try input.withBytes { (p) throws(CryptoError) in
            try aad.withBytes { (a) throws(CryptoError) in
                try nonce.bytes.withBytes { (n) throws(CryptoError) in
                    try ciphertext.withMutableBytes { (c) throws(CryptoError) in
                        try tag.withMutableBytes { (t) throws(CryptoError) in
                            try cipher.seal(plaintext: p, nonce: n, associatedData: a, ciphertext: c, tag: t)
                        }
                    }
                }
            }
        }
        return SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag)
    }

    /// Verifies and decrypts `box`.
    /// - Throws: `CryptoError.authenticationFailed` when the tag does not match (altered
    ///   ciphertext, tag or associated data, or another key); no plaintext is returned.
    public static func open(
        _ box: SealedBox, using key: SymmetricKey,
        authenticating associatedData: some Collection<UInt8> = [UInt8]()
    ) throws(CryptoError) -> [UInt8] {
        let cipher = try AESGCMCipher(key: key)
        let aad = Array(associatedData)
        var plaintext = [UInt8](repeating: 0, count: box.ciphertext.count)
        try box.ciphertext.withBytes { (c) throws(CryptoError) in
            try aad.withBytes { (a) throws(CryptoError) in
                try box.nonce.bytes.withBytes { (n) throws(CryptoError) in
                    try box.tag.withBytes { (t) throws(CryptoError) in
                        try plaintext.withMutableBytes { (p) throws(CryptoError) in
                            try cipher.open(ciphertext: c, nonce: n, associatedData: a, tag: t, plaintext: p)
                        }
                    }
                }
            }
        }
        return plaintext
    }
}

/// AES-GCM bound to one key, reusing its two `EVP_CIPHER_CTX` (one to encrypt, one to
/// decrypt) so each message only sets a nonce: the key schedule and GHASH table are
/// computed once.
///
/// Not `Sendable`: an `EVP_CIPHER_CTX` is not safe to share between threads. Make one
/// per task (or per worker thread); it is cheap to make.
public final class AESGCMCipher {
    private let encryptor: EVPCipherContext
    private let decryptor: EVPCipherContext
    public let keySize: SymmetricKey.Size

    /// - Throws: `CryptoError.library` when libcrypto cannot set up the contexts.
    public init(key: SymmetricKey) throws(CryptoError) {
        keySize = key.size
        encryptor = try EVPCipherContext.make()
        decryptor = try EVPCipherContext.make()
        guard let cipher = AESCipher.gcm.descriptor(keyByteCount: key.byteCount) else {
            throw CryptoError(.invalidKey, "AES-GCM needs a 16- or 32-byte key")
        }
        let ok = key.withUnsafeBytes { k in
            EVP_EncryptInit_ex(encryptor.pointer, cipher, nil, k.u8, nil) == 1
                && EVP_DecryptInit_ex(decryptor.pointer, cipher, nil, k.u8, nil) == 1
        }
        guard ok else { throw CryptoError.openSSL("EVP_EncryptInit_ex/EVP_DecryptInit_ex (AES-GCM key setup)") }
    }

    /// Encrypts `plaintext` into `ciphertext` (same length; may be the same memory) and
    /// writes the 16-byte tag. `associatedData` is authenticated, not encrypted.
    /// - Throws: `CryptoError.invalidInput` on wrong buffer sizes, `.library` if libcrypto fails.
    public func seal(
        plaintext: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer, ciphertext: UnsafeMutableRawBufferPointer,
        tag: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        try checkSizes(nonce: nonce.count, tag: tag.count, input: plaintext.count, output: ciphertext.count)
        let ctx = encryptor.pointer
        var n: Int32 = 0
        guard EVP_EncryptInit_ex(ctx, nil, nil, nil, nonce.u8) == 1 else {
            throw CryptoError.openSSL("EVP_EncryptInit_ex (AES-GCM nonce)")
        }
        if associatedData.count > 0 {
            guard EVP_EncryptUpdate(ctx, nil, &n, associatedData.u8, Int32(associatedData.count)) == 1 else {
                throw CryptoError.openSSL("EVP_EncryptUpdate (AES-GCM associated data)")
            }
        }
        var written = 0
        if plaintext.count > 0 {
            guard EVP_EncryptUpdate(ctx, ciphertext.u8, &n, plaintext.u8, Int32(plaintext.count)) == 1 else {
                throw CryptoError.openSSL("EVP_EncryptUpdate (AES-GCM)")
            }
            written = Int(n)
        }
        guard EVP_EncryptFinal_ex(ctx, ciphertext.u8.map { $0 + written }, &n) == 1,
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, Int32(AESGCM.tagByteCount), tag.baseAddress) == 1
        else { throw CryptoError.openSSL("EVP_EncryptFinal_ex (AES-GCM)") }
    }

    /// Verifies the tag and decrypts `ciphertext` into `plaintext` (same length; may be
    /// the same memory).
    /// - Throws: `CryptoError.authenticationFailed` when the tag does not match; the
    ///   output buffer is then wiped so no unauthenticated plaintext escapes.
    public func open(
        ciphertext: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer,
        plaintext: UnsafeMutableRawBufferPointer
    ) throws(CryptoError) {
        try checkSizes(nonce: nonce.count, tag: tag.count, input: ciphertext.count, output: plaintext.count)
        let ctx = decryptor.pointer
        var n: Int32 = 0
        guard EVP_DecryptInit_ex(ctx, nil, nil, nil, nonce.u8) == 1 else {
            throw CryptoError.openSSL("EVP_DecryptInit_ex (AES-GCM nonce)")
        }
        if associatedData.count > 0 {
            guard EVP_DecryptUpdate(ctx, nil, &n, associatedData.u8, Int32(associatedData.count)) == 1 else {
                throw CryptoError.openSSL("EVP_DecryptUpdate (AES-GCM associated data)")
            }
        }
        var written = 0
        if ciphertext.count > 0 {
            guard EVP_DecryptUpdate(ctx, plaintext.u8, &n, ciphertext.u8, Int32(ciphertext.count)) == 1 else {
                throw CryptoError.openSSL("EVP_DecryptUpdate (AES-GCM)")
            }
            written = Int(n)
        }
        // EVP_CTRL_GCM_SET_TAG takes a non-const pointer but only reads the tag.
        guard
            EVP_CIPHER_CTX_ctrl(
                ctx, EVP_CTRL_GCM_SET_TAG, Int32(AESGCM.tagByteCount),
                UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1
        else { throw CryptoError.openSSL("EVP_CIPHER_CTX_ctrl (AES-GCM set tag)") }
        guard EVP_DecryptFinal_ex(ctx, plaintext.u8.map { $0 + written }, &n) == 1 else {
            SecureMemory.zero(plaintext)
            CryptoError.clearOpenSSLQueue()
            throw CryptoError(
                .authenticationFailed,
                "AES-GCM authentication failed: the data, its associated data or its tag was altered, "
                    + "or it was sealed under another key; discard it")
        }
    }

    private func checkSizes(nonce: Int, tag: Int, input: Int, output: Int) throws(CryptoError) {
        guard nonce == AESGCM.nonceByteCount else {
            throw CryptoError(.invalidInput, "an AES-GCM nonce must be 12 bytes, got \(nonce)")
        }
        guard tag == AESGCM.tagByteCount else {
            throw CryptoError(.invalidInput, "an AES-GCM tag must be 16 bytes, got \(tag)")
        }
        guard output >= input else {
            throw CryptoError(.invalidInput, "output buffer of \(output) bytes is smaller than the input of \(input)")
        }
        guard input <= Int(Int32.max) else { throw CryptoError(.invalidInput, "input too large for one AES-GCM call") }
    }
}
