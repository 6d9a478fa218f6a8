import GatehouseCrypto
import GatehouseEMM
import Testing

/// A source whose every 4-byte word is distinct: 0, 1, 2, … across refills. With it, a
/// repeated salt can only mean the pool handed out the same bytes twice.
final class CountingFill: @unchecked Sendable {
    // @unchecked: used by one test at a time, on its own task.
    private(set) var calls = 0
    private var next: UInt32 = 0

    func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        calls += 1
        for offset in stride(from: 0, to: buffer.count, by: 4) {
            buffer.storeBytes(of: next.bigEndian, toByteOffset: offset, as: UInt32.self)
            next += 1
        }
    }
}

@Suite("Nonce salt pool")
struct NonceSaltPoolTests {
    @Test("never hands out the same random bytes twice, across refills")
    func neverRepeatsBytes() throws {
        let source = CountingFill()
        let pool = NonceSaltPool(capacity: 16) { (buffer) throws(CryptoError) in try source.fill(buffer) }
        #expect(source.calls == 0)  // nothing is drawn before the first salt is needed
        let draws = 1_000
        let salts = try (0..<draws).map { _ in try pool.next() }
        #expect(Set(salts).count == draws)
        #expect(salts == (0..<UInt32(draws)).map { $0 })  // each word once, in order: no rewind
        #expect(source.calls == (draws + 15) / 16)  // one fill per 16 salts, not one per salt
    }

    @Test("salts from the DRBG look random and are drawn in bulk")
    func realRandomness() throws {
        let pool = NonceSaltPool()
        let salts = try (0..<4_096).map { _ in try pool.next() }
        // 4,096 random 32-bit values collide with probability ~0.2 %; more than a few
        // repeats would mean the pool reuses its buffer.
        #expect(Set(salts).count >= 4_090)
        #expect(Set(salts.map { $0 >> 28 }).count == 16)  // every high nibble shows up
    }

    @Test("a failing random source is an error, never a fixed or reused salt")
    func failingSource() throws {
        let pool = NonceSaltPool(capacity: 4) { (_) throws(CryptoError) in
            throw CryptoError(.randomUnavailable, "test: no entropy")
        }
        let error = #expect(throws: EMMError.self) { try pool.next() }
        guard case .crypto(let cause) = error else {
            Issue.record("expected EMMError.crypto, got \(String(describing: error))")
            return
        }
        #expect(cause.code == .randomUnavailable)
        let sealer = try EMMSealer(key: exampleKey, keyVersion: 1, saltPool: pool)
        let emm = EMM(
            addressing: .unique(deviceID: 1), keyVersion: 1, sequenceNumber: 1, timestamp: 0,
            payload: .entitlementCancel(productID: 1))
        #expect(throws: EMMError.self) { try sealer.seal(emm) }
    }

    @Test("sealers sharing a pool take consecutive salts and each EMM opens")
    func sharedBetweenSealers() throws {
        let source = CountingFill()
        let pool = NonceSaltPool(capacity: 8) { (buffer) throws(CryptoError) in try source.fill(buffer) }
        let otherKey = try SymmetricKey.random()
        let a = try EMMSealer(key: exampleKey, keyVersion: 1, saltPool: pool)
        let b = try EMMSealer(key: otherKey, keyVersion: 2, saltPool: pool)
        var salts: [UInt32] = []
        for sequence in 1...10 as ClosedRange<UInt64> {
            let useA = sequence % 2 == 0
            let emm = EMM(
                addressing: .unique(deviceID: 7), keyVersion: useA ? 1 : 2, sequenceNumber: sequence, timestamp: 0,
                payload: .entitlementCancel(productID: 3))
            let section = try (useA ? a : b).seal(emm)
            salts.append(try EMMEnvelope(parsing: section).nonceSalt)
            let opener = try EMMOpener(key: useA ? exampleKey : otherKey, keyVersion: useA ? 1 : 2)
            #expect(try opener.open(section) == emm)
        }
        #expect(salts == Array(0..<10))
        #expect(source.calls == 2)
    }
}
