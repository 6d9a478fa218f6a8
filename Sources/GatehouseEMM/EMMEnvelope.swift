import GatehouseTS

/// The clear part of a sealed EMM: what a receiver, the monitor or `analyze` can read
/// without a key, to filter by address, pick the key by version and drop replays
/// before spending any cryptography.
///
/// - Important: nothing here is authenticated until `EMMOpener.open` succeeds. Use it
///   to route and filter, never to change state.
public struct EMMEnvelope: Sendable, Hashable {
    public var tableID: UInt8
    public var addressing: EMMAddressing
    public var keyVersion: UInt16
    public var sequenceNumber: UInt64
    public var timestamp: UInt32
    public var nonceSalt: UInt32
    /// The whole section on the wire: 3 + section_length bytes.
    public var sectionSize: Int

    /// The encrypted payload length.
    public var ciphertextLength: Int { sectionSize - EMMLayout.overhead }

    /// Parses and checks the section (long form, length, CRC-32) and the clear header.
    /// Bytes after the section are ignored.
    /// - Throws: `EMMError.section` for truncation, an impossible length or a CRC
    ///   mismatch; `.notLongForm`, `.tooShort`, `.unsupportedFormatVersion`,
    ///   `.unknownAddressingClass` for a section that is not a Gatehouse EMM.
    public init(parsing b: UnsafeRawBufferPointer) throws(EMMError) {
        guard b.count >= 3 else { throw .section(.truncated(needed: 3, available: b.count)) }
        guard b[1] & 0x80 != 0 else { throw .notLongForm }
        let sectionLength = Int(b[1] & 0x0F) << 8 | Int(b[2])
        guard sectionLength <= PrivateSection.maximumSectionLength else {
            throw .section(.invalidLength(sectionLength))
        }
        let size = 3 + sectionLength
        guard b.count >= size else { throw .section(.truncated(needed: size, available: b.count)) }
        guard size >= EMMLayout.overhead + EMMLayout.minimumPlaintext else { throw .tooShort(length: size) }
        guard CRC32MPEG2.checksum(UnsafeRawBufferPointer(rebasing: b[0..<size])) == 0 else {
            throw .section(.crcMismatch)
        }
        guard b[EMMLayout.formatVersionOffset] == EMMLayout.formatVersion else {
            throw .unsupportedFormatVersion(b[EMMLayout.formatVersionOffset])
        }
        tableID = b[0]
        addressing = try EMMAddressing(
            classCode: b[EMMLayout.addressingClassOffset],
            address: b.be64(EMMLayout.addressOffset))
        keyVersion = b.be16(EMMLayout.keyVersionOffset)
        sequenceNumber = b.be64(EMMLayout.sequenceNumberOffset)
        timestamp = b.be32(EMMLayout.timestampOffset)
        nonceSalt = b.be32(EMMLayout.nonceSaltOffset)
        sectionSize = size
    }

    public init(parsing bytes: some Collection<UInt8>) throws(EMMError) {
        let array = Array(bytes)
        self = try array.withBytes { (raw) throws(EMMError) -> EMMEnvelope in try EMMEnvelope(parsing: raw) }
    }
}
