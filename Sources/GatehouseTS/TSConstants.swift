/// Every transport-stream number Gatehouse relies on, in one place (as TSDuck keeps
/// them), so a reader checks them against ISO/IEC 13818-1 once.
public enum TS {
    /// A transport packet is exactly 188 bytes (ISO/IEC 13818-1 §2.4.3.2).
    public static let packetSize = 188
    /// The 4-byte packet header before the adaptation field or payload.
    public static let headerSize = 4
    /// The most payload bytes one packet can carry (no adaptation field).
    public static let maximumPayloadSize = packetSize - headerSize
    /// The sync_byte that starts every packet.
    public static let syncByte: UInt8 = 0x47
    /// PIDs are 13 bits: 0x0000–0x1FFF.
    public static let pidCount = 0x2000
    /// A byte value that, where a table_id is expected, means "the rest of this packet is stuffing".
    public static let stuffingByte: UInt8 = 0xFF
    /// The system clock that PCRs count: 27 MHz.
    public static let systemClockFrequency: UInt64 = 27_000_000
    /// PCR_base counts a 90 kHz clock; PCR = base * 300 + extension.
    public static let pcrBaseMultiplier: UInt64 = 300

    /// Well-known PIDs.
    public enum PID {
        /// Program Association Table.
        public static let pat: UInt16 = 0x0000
        /// Conditional Access Table: announces EMM PIDs through CA_descriptors.
        public static let cat: UInt16 = 0x0001
        /// Transport Stream Description Table.
        public static let tsdt: UInt16 = 0x0002
        /// Null packets: stuffing, carry no continuity counter.
        public static let null: UInt16 = 0x1FFF
        /// The largest PID value.
        public static let maximum: UInt16 = 0x1FFF
    }

    /// Table ids.
    public enum TableID {
        public static let pat: UInt8 = 0x00
        /// conditional_access_section.
        public static let cat: UInt8 = 0x01
        public static let pmt: UInt8 = 0x02
        /// ECMs usually use 0x80/0x81 (DVB ETR 289; not enforced).
        public static let ecmRange: ClosedRange<UInt8> = 0x80...0x81
        /// The DVB range conventionally used for EMMs. Parsers must not assume it:
        /// some CAS put EMMs at 0x81.
        public static let emmRange: ClosedRange<UInt8> = 0x82...0x8F
    }

    /// Descriptor tags.
    public enum DescriptorTag {
        /// CA_descriptor (ISO/IEC 13818-1 §2.6.16).
        public static let ca: UInt8 = 0x09
    }

    /// The largest section_length of a PSI or private section (a section is at most 4096 bytes).
    public static let maximumSectionLength = 4093
    /// The largest section_length of the PSI tables (PAT, CAT, PMT): 1021 (sections of at most 1024 bytes).
    public static let maximumPSISectionLength = 1021
    /// A section's header up to and including section_length.
    public static let sectionHeaderSize = 3

    /// RTP payload type for MPEG-2 TS (RFC 3551).
    public static let rtpPayloadTypeMP2T: UInt8 = 33
    /// The fixed RTP header (RFC 3550 §5.1).
    public static let rtpFixedHeaderSize = 12
}
