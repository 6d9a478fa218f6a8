/// The CRC-32 of MPEG-2 systems (ISO/IEC 13818-1 Annex A): polynomial 0x04C11DB7,
/// initial value 0xFFFFFFFF, no reflection, no final XOR. Every PSI/private section
/// with section_syntax_indicator 1 ends with it; a section run through it including
/// its CRC gives 0.
public enum CRC32MPEG2 {
    /// Slicing-by-4 tables: table[0] is the classic byte-wise table.
    static let tables: [[UInt32]] = {
        var t0 = [UInt32](repeating: 0, count: 256)
        for i in 0..<256 {
            var crc = UInt32(i) << 24
            for _ in 0..<8 { crc = (crc & 0x8000_0000) != 0 ? (crc << 1) ^ 0x04C1_1DB7 : crc << 1 }
            t0[i] = crc
        }
        var tables = [t0]
        for k in 1..<4 {
            var t = [UInt32](repeating: 0, count: 256)
            for i in 0..<256 {
                let prev = tables[k - 1][i]
                t[i] = (prev << 8) ^ t0[Int(prev >> 24)]
            }
            tables.append(t)
        }
        return tables
    }()

    /// The CRC of `bytes`, continuing from `initial` (default: a fresh CRC).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, initial: UInt32 = 0xFFFF_FFFF) -> UInt32 {
        var crc = initial
        let t0 = tables[0], t1 = tables[1], t2 = tables[2], t3 = tables[3]
        var i = 0
        let n = bytes.count
        while i + 4 <= n {
            crc ^= UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
            crc = t3[Int(crc >> 24)] ^ t2[Int((crc >> 16) & 0xFF)] ^ t1[Int((crc >> 8) & 0xFF)] ^ t0[Int(crc & 0xFF)]
            i += 4
        }
        while i < n {
            crc = (crc << 8) ^ t0[Int((crc >> 24) ^ UInt32(bytes[i]))]
            i += 1
        }
        return crc
    }

    public static func checksum<C: Collection<UInt8>>(_ bytes: C) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0)) }) { return crc }
        return Array(bytes).withUnsafeBytes { checksum($0) }
    }
}
