import COpenSSL

/// Owns one `EVP_CIPHER_CTX`. The context holds an expanded key schedule once a key
/// is set; `EVP_CIPHER_CTX_free` cleanses it before releasing the memory.
///
/// Not `Sendable`: an `EVP_CIPHER_CTX` must not be used by two threads at once.
final class EVPCipherContext {
    let pointer: OpaquePointer

    /// - Throws: `CryptoError.library` when libcrypto cannot allocate a context.
    static func make() throws(CryptoError) -> EVPCipherContext {
        guard let pointer = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL("EVP_CIPHER_CTX_new") }
        return EVPCipherContext(pointer: pointer)
    }

    private init(pointer: OpaquePointer) { self.pointer = pointer }

    deinit { EVP_CIPHER_CTX_free(pointer) }  // frees and cleanses the key schedule
}

/// The AES cipher of a given mode for a key length, as libcrypto's static descriptors.
enum AESCipher {
    case gcm, ecb, wrap, wrapPad

    func descriptor(keyByteCount: Int) -> OpaquePointer? {
        switch (self, keyByteCount) {
        case (.gcm, 16): EVP_aes_128_gcm()
        case (.gcm, 32): EVP_aes_256_gcm()
        case (.ecb, 16): EVP_aes_128_ecb()
        case (.ecb, 32): EVP_aes_256_ecb()
        case (.wrap, 16): EVP_aes_128_wrap()
        case (.wrap, 24): EVP_aes_192_wrap()
        case (.wrap, 32): EVP_aes_256_wrap()
        case (.wrapPad, 16): EVP_aes_128_wrap_pad()
        case (.wrapPad, 24): EVP_aes_192_wrap_pad()
        case (.wrapPad, 32): EVP_aes_256_wrap_pad()
        default: nil
        }
    }
}

extension UnsafeRawBufferPointer {
    /// The base address as `const unsigned char *`, the type libcrypto takes for data.
    var u8: UnsafePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
}

extension UnsafeMutableRawBufferPointer {
    var u8: UnsafeMutablePointer<UInt8>? { baseAddress?.assumingMemoryBound(to: UInt8.self) }
}

// `Array.withUnsafeBytes` is `rethrows`, which erases a typed error to `any Error`;
// these keep `throws(E)` so functions can promise their own error type (`CryptoError`
// here, `EMMError` in the EMM module, which uses these rather than a copy).
extension Array where Element == UInt8 {
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    public mutating func withMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E)
        -> R
    {
        let result: Result<R, E> = withUnsafeMutableBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }
}
