import GatehouseCrypto
import GatehouseTS

/// Builds and encrypts EMMs under one key into finished long-form private sections
/// (header, ciphertext, tag, CRC-32), ready for the TS packetizer.
///
/// It keeps one AES-GCM context for its key, so sealing costs one nonce set-up and
/// one pass over ~20–80 bytes; make one per (device key, task) and reuse it. Salts come
/// from a `NonceSaltPool`: its own small one, or one shared by many sealers (the worker
/// keeps a sealer per device key and one pool for all of them).
///
/// Nonce: `sequenceNumber (8 bytes, big-endian) ‖ nonceSalt (4 random bytes)`; the
/// salt is in the header, the sequence number too, so the nonce is never sent twice.
/// It cannot repeat under one key while sequence numbers are unique per key, and the
/// random salt keeps a collision at 2⁻³² even if a sequence number is reused by
/// mistake (a restored database, two keys registered identically).
///
/// Not `Sendable`: it owns an `EVP_CIPHER_CTX` (see `AESGCMCipher`).
public final class EMMSealer {
    public let keyVersion: UInt16
    public let tableIDs: EMMTableIDs
    private let cipher: AESGCMCipher
    private let salts: NonceSaltPool

    /// A sealer with a pool of its own (64 salts per `RAND_bytes` call, drawn on first use).
    /// - Throws: `EMMError.crypto` when libcrypto cannot set up the key.
    public convenience init(key: SymmetricKey, keyVersion: UInt16, tableIDs: EMMTableIDs = .standard)
        throws(EMMError)
    {
        try self.init(key: key, keyVersion: keyVersion, tableIDs: tableIDs, saltPool: NonceSaltPool(capacity: 64))
    }

    /// A sealer drawing its salts from `saltPool`, which other sealers may share (all of
    /// them used by one task or under one lock: neither is `Sendable`).
    /// - Throws: `EMMError.crypto` when libcrypto cannot set up the key.
    public init(key: SymmetricKey, keyVersion: UInt16, tableIDs: EMMTableIDs = .standard, saltPool: NonceSaltPool)
        throws(EMMError)
    {
        self.keyVersion = keyVersion
        self.tableIDs = tableIDs
        self.salts = saltPool
        do { cipher = try AESGCMCipher(key: key) } catch { throw .crypto(error) }
    }

    /// The sealed section for `emm`.
    /// - Parameter nonceSalt: leave `nil` (a fresh random salt). A fixed salt is only
    ///   for known-answer tests and the worked example in docs/emm-format.md.
    /// - Throws: `EMMError.keyVersionMismatch` when `emm.keyVersion` is not this
    ///   sealer's; `.invalidField` when a field cannot be encoded; `.crypto` if
    ///   libcrypto fails.
    public func seal(_ emm: EMM, nonceSalt: UInt32? = nil) throws(EMMError) -> [UInt8] {
        var out: [UInt8] = []
        try seal(emm, nonceSalt: nonceSalt, appendingTo: &out)
        return out
    }

    /// Appends the sealed section for `emm` to `out` (no intermediate buffers: the
    /// plaintext is written in place and encrypted in place).
    public func seal(_ emm: EMM, nonceSalt: UInt32? = nil, appendingTo out: inout [UInt8]) throws(EMMError) {
        guard emm.keyVersion == keyVersion else {
            throw .keyVersionMismatch(expected: keyVersion, found: emm.keyVersion)
        }
        let bodySize = try EMMPayloadCodec.size(of: emm.payload)
        let total = EMMLayout.overhead + bodySize
        let sectionLength = total - 3
        guard sectionLength <= PrivateSection.maximumSectionLength else {
            throw .invalidField("EMM of \(total) bytes does not fit one section")
        }
        let salt: UInt32
        if let nonceSalt { salt = nonceSalt } else { salt = try salts.next() }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: total))
        let cipher = self.cipher
        let tableID = tableIDs.tableID(for: emm.addressing)
        // On failure the bytes appended here are removed again: `out` is left as it was.
        var didFail = true
        defer { if didFail, out.count == start + total { out.removeSubrange(start...) } }
        try out.withMutableBytes { (whole) throws(EMMError) in
            let s = UnsafeMutableRawBufferPointer(rebasing: whole[start..<(start + total)])
            // Long-form private section header (ISO/IEC 13818-1 2.4.4.10).
            s[0] = tableID
            s[1] = 0x80 | 0x40 | 0x30 | UInt8(sectionLength >> 8)  // syntax 1, private 1, reserved 11
            s[2] = UInt8(sectionLength & 0xFF)
            s.put16(UInt16(truncatingIfNeeded: emm.addressing.address), at: 3)  // filter hint
            s[5] = 0xC1  // reserved 11, version_number 0, current_next_indicator 1
            s[6] = 0  // section_number
            s[7] = 0  // last_section_number
            // Clear EMM header.
            s[EMMLayout.formatVersionOffset] = EMMLayout.formatVersion
            s[EMMLayout.addressingClassOffset] = emm.addressing.classCode
            s.put64(emm.addressing.address, at: EMMLayout.addressOffset)
            s.put16(emm.keyVersion, at: EMMLayout.keyVersionOffset)
            s.put64(emm.sequenceNumber, at: EMMLayout.sequenceNumberOffset)
            s.put32(emm.timestamp, at: EMMLayout.timestampOffset)
            s.put32(salt, at: EMMLayout.nonceSaltOffset)
            let body = UnsafeMutableRawBufferPointer(
                rebasing: s[EMMLayout.headerSize..<(EMMLayout.headerSize + bodySize)])
            EMMPayloadCodec.write(emm.payload, into: body)
            let tagStart = EMMLayout.headerSize + bodySize
            let tag = UnsafeMutableRawBufferPointer(rebasing: s[tagStart..<(tagStart + EMMLayout.tagSize)])
            let aad = UnsafeRawBufferPointer(rebasing: s[0..<EMMLayout.headerSize])
            // The nonce is seq ‖ salt, but in the header the timestamp sits between them.
            var nonceBytes: (UInt64, UInt32) = (emm.sequenceNumber.bigEndian, salt.bigEndian)
            do throws(CryptoError) {
                try withBytes(of: &nonceBytes) { (n) throws(CryptoError) in
                    try cipher.seal(
                        plaintext: UnsafeRawBufferPointer(body), nonce: n, associatedData: aad,
                        ciphertext: body, tag: tag)
                }
            } catch {
                SecureMemory.zero(s)
                throw .crypto(error)
            }
            let crc = CRC32MPEG2.checksum(UnsafeRawBufferPointer(rebasing: s[0..<(total - EMMLayout.crcSize)]))
            s.put32(crc, at: total - EMMLayout.crcSize)
        }
        didFail = false
    }
}

/// Authenticates and decrypts sealed EMMs under one key and key version.
///
/// Order of checks: section (length, CRC-32) → clear header → key version → AES-GCM
/// tag over header and ciphertext → payload layout. Nothing decrypted is returned
/// unless the tag verified. It does not check replays: pass the result to a
/// `ReplayGuard` (only after `open` succeeded, so forgeries cannot move it).
///
/// Not `Sendable`: it owns an `EVP_CIPHER_CTX`. One per (key, task).
public final class EMMOpener {
    public let keyVersion: UInt16
    private let cipher: AESGCMCipher

    public init(key: SymmetricKey, keyVersion: UInt16) throws(EMMError) {
        self.keyVersion = keyVersion
        do { cipher = try AESGCMCipher(key: key) } catch { throw .crypto(error) }
    }

    /// Opens one section (extra bytes after it are ignored).
    /// - Throws: `EMMError.section` (transmission damage), `.keyVersionMismatch`,
    ///   `.authenticationFailed` (altered or not for this key), `.malformedPayload`,
    ///   or the header errors of `EMMEnvelope`.
    public func open(_ section: UnsafeRawBufferPointer) throws(EMMError) -> EMM {
        let envelope = try EMMEnvelope(parsing: section)
        return try open(section, envelope: envelope)
    }

    public func open(_ section: some Collection<UInt8>) throws(EMMError) -> EMM {
        if let array = section as? [UInt8] {
            return try array.withBytes { (raw) throws(EMMError) -> EMM in try open(raw) }
        }
        return try Array(section).withBytes { (raw) throws(EMMError) -> EMM in try open(raw) }
    }

    /// Opens a section whose envelope the caller already parsed (to pick this opener).
    public func open(_ section: UnsafeRawBufferPointer, envelope: EMMEnvelope) throws(EMMError) -> EMM {
        guard envelope.keyVersion == keyVersion else {
            throw .keyVersionMismatch(expected: keyVersion, found: envelope.keyVersion)
        }
        let count = envelope.ciphertextLength
        let aad = UnsafeRawBufferPointer(rebasing: section[0..<EMMLayout.headerSize])
        let ciphertext = UnsafeRawBufferPointer(
            rebasing: section[EMMLayout.headerSize..<(EMMLayout.headerSize + count)])
        let tagStart = EMMLayout.headerSize + count
        let tag = UnsafeRawBufferPointer(rebasing: section[tagStart..<(tagStart + EMMLayout.tagSize)])
        var nonceBytes: (UInt64, UInt32) = (envelope.sequenceNumber.bigEndian, envelope.nonceSalt.bigEndian)
        let cipher = self.cipher
        let payload = try withTemporaryBytes(count) { (plaintext) throws(EMMError) -> EMMPayload in
            defer { SecureMemory.zero(plaintext) }
            do throws(CryptoError) {
                try withBytes(of: &nonceBytes) { (n) throws(CryptoError) in
                    try cipher.open(
                        ciphertext: ciphertext, nonce: n, associatedData: aad, tag: tag, plaintext: plaintext)
                }
            } catch {
                if error.code == .authenticationFailed { throw .authenticationFailed }
                throw .crypto(error)
            }
            return try EMMPayloadCodec.read(UnsafeRawBufferPointer(plaintext))
        }
        return EMM(
            addressing: envelope.addressing, keyVersion: envelope.keyVersion,
            sequenceNumber: envelope.sequenceNumber, timestamp: envelope.timestamp, payload: payload)
    }
}
