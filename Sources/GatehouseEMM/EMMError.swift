import GatehouseCrypto
import GatehouseTS

/// Why an EMM could not be built, parsed, opened or accepted.
///
/// Descriptions name the field and what to do; they never include key bytes or
/// decrypted content.
public enum EMMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The section itself is broken (truncated, impossible length, CRC mismatch): a
    /// transmission error, caught before any cryptography.
    case section(SectionError)
    /// A short-form section: Gatehouse EMMs always use the long form with CRC-32.
    case notLongForm
    /// The section is shorter than the smallest possible EMM.
    case tooShort(length: Int)
    case unsupportedFormatVersion(UInt8)
    case unknownAddressingClass(UInt8)
    /// The EMM was sealed under another key version than the one offered.
    case keyVersionMismatch(expected: UInt16, found: UInt16)
    /// The AES-GCM tag did not verify: a byte of header, payload or tag was altered,
    /// or the EMM is for another device/key.
    case authenticationFailed
    /// Authenticated, but the plaintext does not follow the layout (a bug at the sender).
    case malformedPayload(String)
    /// A field cannot be encoded as given (checked before sealing).
    case invalidField(String)
    /// Same sequence number as the highest accepted: a carousel repeat or a replay.
    case duplicate(sequenceNumber: UInt64)
    /// Lower sequence number than the highest accepted: an older EMM or a replay.
    case stale(sequenceNumber: UInt64, highestAccepted: UInt64)
    /// libcrypto failed (not an authentication failure).
    case crypto(CryptoError)

    public var description: String {
        switch self {
        case .section(let error): "EMM section rejected before decryption: \(error)"
        case .notLongForm: "EMM section uses the short form; Gatehouse EMMs use the long form with CRC-32"
        case .tooShort(let length):
            "EMM section of \(length) bytes is shorter than the smallest EMM (\(EMMLayout.overhead + EMMLayout.minimumPlaintext))"
        case .unsupportedFormatVersion(let v):
            "EMM format version \(v) is not supported (expected \(EMMLayout.formatVersion))"
        case .unknownAddressingClass(let c): "EMM addressing class \(c) is unknown (0 unique, 1 shared, 2 global)"
        case .keyVersionMismatch(let expected, let found):
            "EMM sealed under key version \(found), but the key offered is version \(expected): look up the right key"
        case .authenticationFailed:
            "EMM authentication failed: the section was altered or sealed under another key; drop it"
        case .malformedPayload(let reason): "EMM payload is malformed: \(reason)"
        case .invalidField(let reason): "EMM cannot be built: \(reason)"
        case .duplicate(let seq): "EMM sequence \(seq) was already accepted: a repeat or a replay; ignore it"
        case .stale(let seq, let highest):
            "EMM sequence \(seq) is below the highest accepted (\(highest)): an older EMM or a replay; ignore it"
        case .crypto(let error): "EMM cryptography failed: \(error)"
        }
    }
}
