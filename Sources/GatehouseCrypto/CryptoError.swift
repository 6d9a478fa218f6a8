import COpenSSL

/// Why a cryptographic operation failed.
///
/// The shape follows the project's error convention: an extensible `Code`, a message
/// that says what went wrong and what to do, OpenSSL's own packed error code when
/// there is one, and where it was raised.
///
/// - Important: no message ever contains key bytes, plaintext or the text a caller
///   passed as a key; they name lengths and positions only. OpenSSL's reason strings
///   are static library text and are safe to include.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure this is; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A key of the wrong length or malformed hex.
        public static let invalidKey = Code("invalid_key")
        /// A nonce, tag or input buffer of the wrong size.
        public static let invalidInput = Code("invalid_input")
        /// AES-GCM tag verification failed: altered data, wrong key or wrong associated data.
        public static let authenticationFailed = Code("authentication_failed")
        /// AES key unwrap integrity check failed: altered wrapped key or wrong KEK.
        public static let unwrapFailed = Code("unwrap_failed")
        /// The random generator could not produce bytes (not seeded, entropy source gone).
        public static let randomUnavailable = Code("random_unavailable")
        /// Any other failure reported by libcrypto.
        public static let library = Code("library")
    }

    public var code: Code
    /// A sentence for the caller: what went wrong and, where possible, what to do.
    public var message: String
    /// The first packed OpenSSL error code (`ERR_get_error`) when libcrypto reported one.
    public var nativeCode: UInt?
    public var file: String
    public var line: Int

    public init(_ code: Code, _ message: String, nativeCode: UInt? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.nativeCode = nativeCode
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.nativeCode == rhs.nativeCode
    }

    /// Drains OpenSSL's per-thread error queue into one error for `operation`.
    ///
    /// Every failing libcrypto call goes through here, so a stale queue never leaks
    /// into the next error on the same thread.
    static func openSSL(
        _ operation: String, code: Code = .library, hint: String? = nil,
        file: String = #fileID, line: Int = #line
    ) -> CryptoError {
        var first: UInt?
        var reasons: [String] = []
        var buffer = [CChar](repeating: 0, count: 256)
        while true {
            let packed = ERR_get_error()
            if packed == 0 { break }
            if first == nil { first = UInt(packed) }
            if reasons.count < 4 {  // bounded: the queue can hold many entries
                buffer.withUnsafeMutableBufferPointer { ERR_error_string_n(packed, $0.baseAddress, $0.count) }
                reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
        var message = "\(operation) failed"
        if !reasons.isEmpty { message += " (" + reasons.joined(separator: "; ") + ")" }
        if let hint { message += ": " + hint }
        return CryptoError(code, message, nativeCode: first, file: file, line: line)
    }

    /// Clears the queue without building an error, after an expected failure
    /// (a failed tag check) whose cause is already known.
    static func clearOpenSSLQueue() { ERR_clear_error() }
}
