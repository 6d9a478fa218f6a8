import GatehouseCrypto

/// Random 32-bit nonce salts for `EMMSealer`, drawn from the OpenSSL DRBG in bulk.
///
/// One `RAND_bytes` call per `capacity` salts instead of one per sealer: a worker that keeps
/// a sealer per device key shares one pool between all of them, so making or reusing a
/// sealer costs no random bytes up front.
///
/// Every salt is fresh DRBG output handed out exactly once: the read position only moves
/// forward, and the buffer is refilled (not rewound) when it runs out. A salt is therefore
/// as unpredictable as one drawn on its own; pooling changes only how many bytes are asked
/// of the DRBG at a time. Salts are random, not distinct by construction (two may be equal,
/// with probability 2⁻³² per pair): the nonce stays unique because its other half, the
/// sequence number, is unique per address (docs/emm-format.md, "Why the nonce never repeats").
///
/// Not `Sendable`: share it only between sealers used by one task or under one lock.
public final class NonceSaltPool {
    /// Fills a buffer with random bytes; `SecureRandom.fill` except in tests.
    public typealias Fill = (UnsafeMutableRawBufferPointer) throws(CryptoError) -> Void

    /// Salts per refill.
    public let capacity: Int
    private var buffer: [UInt8]
    /// Byte offset of the next salt; `buffer.count` means "refill first".
    private var position: Int
    private let fill: Fill

    /// - Parameters:
    ///   - capacity: salts drawn per `RAND_bytes` call (4 bytes each). Default 1024 (4 KiB).
    ///   - fill: the random source; leave the default (the OpenSSL DRBG) outside tests.
    public init(capacity: Int = 1024, fill: @escaping Fill = { (buffer) throws(CryptoError) in try SecureRandom.fill(buffer) }) {
        precondition(capacity > 0, "a salt pool holds at least one salt")
        self.capacity = capacity
        buffer = [UInt8](repeating: 0, count: capacity * 4)
        position = capacity * 4
        self.fill = fill
    }

    /// The next salt; never the same bytes of DRBG output twice.
    /// - Throws: `EMMError.crypto` when the random generator fails (never a weaker fallback).
    public func next() throws(EMMError) -> UInt32 {
        if position == buffer.count {
            let fill = self.fill
            do throws(CryptoError) {
                try buffer.withMutableBytes { (raw) throws(CryptoError) in try fill(raw) }
            } catch { throw .crypto(error) }
            position = 0
        }
        let salt = buffer.withUnsafeBytes { $0.be32(position) }
        position += 4
        return salt
    }
}
