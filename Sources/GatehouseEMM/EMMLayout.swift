/// Every constant of the EMM byte layout in one place (see docs/emm-format.md).
public enum EMMLayout {
    /// The format version written at byte 8; a receiver refuses others.
    public static let formatVersion: UInt8 = 0x01

    /// Offsets within the section.
    public static let tableIDOffset = 0
    public static let formatVersionOffset = 8
    public static let addressingClassOffset = 9
    public static let addressOffset = 10
    public static let keyVersionOffset = 18
    public static let sequenceNumberOffset = 20
    public static let timestampOffset = 28
    public static let nonceSaltOffset = 32
    /// Bytes 0..<36: the long-form section header and the clear EMM header, all
    /// authenticated as AES-GCM associated data.
    public static let headerSize = 36
    public static let tagSize = 16
    public static let crcSize = 4
    /// Header, tag and CRC: a section is this plus the ciphertext.
    public static let overhead = headerSize + tagSize + crcSize
    /// The smallest plaintext (a cancel: kind + product id).
    public static let minimumPlaintext = 3
    /// The most UTF-8 bytes in an on-screen message text: keeps one EMM well inside
    /// one section (4096 bytes) and a few dozen TS packets.
    public static let maximumTextBytes = 1024

    /// Addressing class codes (byte 9).
    public enum AddressingClass {
        public static let unique: UInt8 = 0x00
        public static let shared: UInt8 = 0x01
        public static let global: UInt8 = 0x02
    }

    /// Payload kind codes (first plaintext byte).
    public enum Kind {
        public static let entitlementAdd: UInt8 = 0x01
        public static let entitlementCancel: UInt8 = 0x02
        public static let onScreenMessage: UInt8 = 0x03
        public static let keyUpdate: UInt8 = 0x04
    }
}

/// The table_id per addressing class. Defaults: 0x82 unique, 0x83 shared, 0x84 global.
/// Parsers do not depend on these values (some CAS use 0x81); they only feed
/// receivers' section filters and the monitor's per-table_id figures.
public struct EMMTableIDs: Sendable, Hashable {
    public var unique: UInt8
    public var shared: UInt8
    public var global: UInt8

    public init(unique: UInt8 = 0x82, shared: UInt8 = 0x83, global: UInt8 = 0x84) {
        self.unique = unique
        self.shared = shared
        self.global = global
    }

    public static let standard = EMMTableIDs()

    public func tableID(for addressing: EMMAddressing) -> UInt8 {
        switch addressing {
        case .unique: unique
        case .shared: shared
        case .global: global
        }
    }
}
