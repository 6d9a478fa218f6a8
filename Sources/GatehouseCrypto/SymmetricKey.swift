import COpenSSL

/// An AES key (128 or 256 bits) whose bytes live in one private allocation that is
/// wiped with `OPENSSL_cleanse` when the last copy goes away.
///
/// `description`, `debugDescription` and the mirror show only the size and the key
/// check value, so a key interpolated into a log line or an error leaks nothing.
///
/// `Sendable`: the bytes are written once in `init` and only read afterwards, so
/// copies may be shared across tasks freely.
public struct SymmetricKey: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    /// The AES key sizes Gatehouse accepts.
    public enum Size: Int, Sendable, CaseIterable, CustomStringConvertible {
        case bits128 = 128
        case bits256 = 256

        public var byteCount: Int { rawValue / 8 }
        public var description: String { "AES-\(rawValue)" }
    }

    final class Storage: @unchecked Sendable {
        // @unchecked: `bytes` is written only in `init` and is read-only until `deinit`.
        let bytes: UnsafeMutableRawBufferPointer

        init(copying source: UnsafeRawBufferPointer) {
            bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: source.count, alignment: 16)
            bytes.copyMemory(from: source)
        }

        deinit {
            OPENSSL_cleanse(bytes.baseAddress, bytes.count)
            bytes.deallocate()
        }
    }

    let storage: Storage
    /// The key check value, computed once (see `keyCheckValue`).
    public let keyCheckValue: String
    public let size: Size

    /// A key from raw bytes (16 or 32).
    /// - Throws: `CryptoError.invalidKey` when the length is neither 16 nor 32 bytes.
    public init(bytes: some Collection<UInt8>) throws(CryptoError) {
        var copy = Array(bytes)
        defer { SecureMemory.zero(&copy) }
        self = try copy.withBytes { (raw) throws(CryptoError) -> SymmetricKey in try SymmetricKey(raw) }
    }

    /// A key from raw bytes (16 or 32).
    /// - Throws: `CryptoError.invalidKey` when the length is neither 16 nor 32 bytes.
    public init(_ raw: UnsafeRawBufferPointer) throws(CryptoError) {
        guard let size = Size.allCases.first(where: { $0.byteCount == raw.count }) else {
            throw CryptoError(
                .invalidKey, "an AES key must be 16 or 32 bytes (AES-128 or AES-256), got \(raw.count) bytes")
        }
        let storage = Storage(copying: raw)
        self.storage = storage
        self.size = size
        self.keyCheckValue = try KeyCheckValue.compute(UnsafeRawBufferPointer(storage.bytes))
    }

    /// A key from hex: 32 digits (AES-128) or 64 digits (AES-256), either case;
    /// surrounding white space is ignored.
    /// - Throws: `CryptoError.invalidKey` naming the length or the position of the first
    ///   non-hex character (never the text itself).
    public init(hex text: String) throws(CryptoError) {
        var utf8 = Array(text.utf8)
        defer { SecureMemory.zero(&utf8) }
        var start = 0
        var end = utf8.count
        while start < end, Hex.isSpace(utf8[start]) { start += 1 }
        while end > start, Hex.isSpace(utf8[end - 1]) { end -= 1 }
        let digits = end - start
        guard digits == 32 || digits == 64 else {
            throw CryptoError(
                .invalidKey,
                "a key in hex must be 32 digits (AES-128) or 64 digits (AES-256), got \(digits) characters")
        }
        var bytes = [UInt8](repeating: 0, count: digits / 2)
        defer { SecureMemory.zero(&bytes) }
        for i in 0..<(digits / 2) {
            guard let high = Hex.value(utf8[start + 2 * i]) else {
                throw CryptoError(.invalidKey, "the key hex has a non-hex character at position \(2 * i + 1)")
            }
            guard let low = Hex.value(utf8[start + 2 * i + 1]) else {
                throw CryptoError(.invalidKey, "the key hex has a non-hex character at position \(2 * i + 2)")
            }
            bytes[i] = high << 4 | low
        }
        self = try bytes.withBytes { (raw) throws(CryptoError) -> SymmetricKey in try SymmetricKey(raw) }
    }

    /// A fresh key from the OpenSSL DRBG.
    /// - Throws: `CryptoError.randomUnavailable` when the generator fails.
    public static func random(size: Size = .bits128) throws(CryptoError) -> SymmetricKey {
        var bytes = [UInt8](repeating: 0, count: size.byteCount)
        defer { SecureMemory.zero(&bytes) }
        try bytes.withMutableBytes { (raw) throws(CryptoError) in try SecureRandom.fill(raw) }
        return try bytes.withBytes { (raw) throws(CryptoError) -> SymmetricKey in try SymmetricKey(raw) }
    }

    public var byteCount: Int { storage.bytes.count }

    /// Lends the raw key bytes to `body`.
    /// - Important: do not copy them out of the closure into anything that outlives it
    ///   unwiped (`SecureMemory.zero` a temporary buffer when done).
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(storage.bytes))
    }

    /// The key in lowercase hex, for the one place it must leave the process in clear
    /// (`keygen` output). Callers should wipe the returned string's buffer when possible.
    public func unsafeHexString() -> String { Hex.encode(UnsafeRawBufferPointer(storage.bytes)) }

    /// Constant-time comparison of the key bytes.
    public static func == (lhs: SymmetricKey, rhs: SymmetricKey) -> Bool {
        lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in ConstantTime.isEqual(a, b) } }
    }

    public var description: String { "SymmetricKey(\(size), KCV \(keyCheckValue))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: ["size": size, "keyCheckValue": keyCheckValue], displayStyle: .struct)
    }
}

/// The key check value: the first 3 bytes of the AES-ECB encryption of one all-zero
/// block under the key, as 6 uppercase hex digits (the usual CAS and payment-HSM
/// convention). It identifies a key to an operator without revealing it; 24 bits
/// are too few to help a brute-force search of a 128-bit key.
public enum KeyCheckValue {
    /// The KCV of `key` (e.g. `66E94B` for the all-zero AES-128 key).
    public static func compute(for key: SymmetricKey) -> String { key.keyCheckValue }

    static func compute(_ key: UnsafeRawBufferPointer) throws(CryptoError) -> String {
        let context = try EVPCipherContext.make()
        guard let cipher = AESCipher.ecb.descriptor(keyByteCount: key.count),
            EVP_EncryptInit_ex(context.pointer, cipher, nil, key.u8, nil) == 1
        else { throw CryptoError.openSSL("EVP_EncryptInit_ex (AES-ECB for the key check value)") }
        EVP_CIPHER_CTX_set_padding(context.pointer, 0)
        var zero = [UInt8](repeating: 0, count: 16)
        var out = [UInt8](repeating: 0, count: 32)
        var written: Int32 = 0
        guard EVP_EncryptUpdate(context.pointer, &out, &written, &zero, 16) == 1, written == 16 else {
            throw CryptoError.openSSL("EVP_EncryptUpdate (AES-ECB for the key check value)")
        }
        return Hex.encode(out.prefix(3), uppercase: true)
    }
}
