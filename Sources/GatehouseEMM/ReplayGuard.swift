import Synchronization

/// Refuses EMMs whose sequence number is not above the highest one accepted for the
/// same address (device, group, or global).
///
/// Use it only after `EMMOpener.open` succeeded: a forged EMM must not be able to
/// move the counter. Equal is a `duplicate` (the carousel repeats every live EMM, so
/// a receiver sees each one many times: expected, ignore); lower is `stale` (an older
/// EMM or a replay). `accept` checks and records atomically, so two tasks offering the
/// same EMM cannot both apply it.
///
/// `Sendable`: the table sits behind a `Mutex`. A set-top box persists `snapshot()` and
/// `restore`s it at start, or a replay after a reboot would be accepted.
public final class ReplayGuard: Sendable {
    private let highest = Mutex<[EMMAddressing: UInt64]>([:])

    public init() {}

    /// The highest sequence number accepted for `addressing`, if any.
    public func highestAccepted(for addressing: EMMAddressing) -> UInt64? {
        highest.withLock { $0[addressing] }
    }

    /// Checks without recording.
    /// - Throws: `EMMError.duplicate` or `.stale`.
    public func check(_ addressing: EMMAddressing, sequenceNumber: UInt64) throws(EMMError) {
        let current = highestAccepted(for: addressing)
        try Self.verdict(sequenceNumber, current)
    }

    /// Checks and, when fresh, records `sequenceNumber` as the highest for `addressing`.
    /// - Throws: `EMMError.duplicate` or `.stale`; nothing is recorded then.
    public func accept(_ addressing: EMMAddressing, sequenceNumber: UInt64) throws(EMMError) {
        let result: Result<Void, EMMError> = highest.withLock { table in
            do throws(EMMError) {
                try Self.verdict(sequenceNumber, table[addressing])
                table[addressing] = sequenceNumber
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// `accept(emm.addressing, sequenceNumber: emm.sequenceNumber)`.
    public func accept(_ emm: EMM) throws(EMMError) {
        try accept(emm.addressing, sequenceNumber: emm.sequenceNumber)
    }

    /// Every address and its highest accepted sequence number, for persistence.
    public func snapshot() -> [EMMAddressing: UInt64] { highest.withLock { $0 } }

    /// Raises the recorded highest for each address to at least the given value
    /// (never lowers one, so restoring an old snapshot cannot reopen a window).
    public func restore(_ entries: [EMMAddressing: UInt64]) {
        highest.withLock { table in
            for (addressing, sequence) in entries { table[addressing] = max(table[addressing] ?? 0, sequence) }
        }
    }

    private static func verdict(_ sequence: UInt64, _ current: UInt64?) throws(EMMError) {
        guard let current else { return }
        if sequence == current { throw .duplicate(sequenceNumber: sequence) }
        if sequence < current { throw .stale(sequenceNumber: sequence, highestAccepted: current) }
    }
}
