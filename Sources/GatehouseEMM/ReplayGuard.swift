import Synchronization

/// Refuses EMMs whose sequence number was already accepted, or is too old, for the
/// same address (device, group, or global).
///
/// Strict mode (`window` 0, the default): only a sequence number above the highest
/// accepted passes; equal is a `duplicate`, lower is `stale`.
///
/// Window mode (`window` 1…64, the IPsec/DTLS anti-replay scheme): a sequence number
/// up to `window` below the highest also passes once, if it was never accepted. A
/// receiver that joins the carousel mid-cycle sees a device's live EMMs out of order
/// (…, 11, 12, then 10 on the next cycle); strict mode would refuse 10 for good, so
/// set-top boxes should use a window (see docs/emm-format.md, "Replay rules").
///
/// Use it only after `EMMOpener.open` succeeded: a forged EMM must not be able to move
/// the counter. `accept` checks and records atomically, so two tasks offering the same
/// EMM cannot both apply it.
///
/// `Sendable`: the table sits behind a `Mutex`. A set-top box persists `snapshot()` and
/// `restore`s it at start, or a replay after a reboot would be accepted.
public final class ReplayGuard: Sendable {
    struct Entry: Sendable {
        var highest: UInt64
        /// Bit k set: `highest - k` was accepted (bit 0 is `highest` itself).
        var seen: UInt64
    }

    public let window: Int
    private let table = Mutex<[EMMAddressing: Entry]>([:])

    /// - Parameter window: 0 (strict: only above the highest) up to 64.
    public init(window: Int = 0) {
        precondition((0...64).contains(window), "ReplayGuard window must be 0...64")
        self.window = window
    }

    /// The highest sequence number accepted for `addressing`, if any.
    public func highestAccepted(for addressing: EMMAddressing) -> UInt64? {
        table.withLock { $0[addressing]?.highest }
    }

    /// Checks without recording.
    /// - Throws: `EMMError.duplicate` or `.stale`.
    public func check(_ addressing: EMMAddressing, sequenceNumber: UInt64) throws(EMMError) {
        let entry = table.withLock { $0[addressing] }
        var copy = entry
        try Self.admit(sequenceNumber, &copy, window: window)
    }

    /// Checks and, when acceptable, records `sequenceNumber` for `addressing`.
    /// - Throws: `EMMError.duplicate` or `.stale`; nothing is recorded then.
    public func accept(_ addressing: EMMAddressing, sequenceNumber: UInt64) throws(EMMError) {
        let window = self.window
        let result: Result<Void, EMMError> = table.withLock { table in
            do throws(EMMError) {
                var entry = table[addressing]
                try Self.admit(sequenceNumber, &entry, window: window)
                table[addressing] = entry
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
    public func snapshot() -> [EMMAddressing: UInt64] { table.withLock { $0.mapValues(\.highest) } }

    /// Raises the recorded highest for each address to at least the given value, and
    /// treats the whole window below it as seen (conservative after a restart). Never
    /// lowers a counter, so restoring an old snapshot cannot reopen a window.
    public func restore(_ entries: [EMMAddressing: UInt64]) {
        table.withLock { table in
            for (addressing, sequence) in entries where sequence >= (table[addressing]?.highest ?? 0) {
                table[addressing] = Entry(highest: sequence, seen: .max)
            }
        }
    }

    private static func admit(_ sequence: UInt64, _ entry: inout Entry?, window: Int) throws(EMMError) {
        guard var current = entry else {
            entry = Entry(highest: sequence, seen: 1)
            return
        }
        if sequence > current.highest {
            let shift = sequence - current.highest
            current.seen = shift >= 64 ? 1 : (current.seen << shift) | 1
            current.highest = sequence
            entry = current
            return
        }
        let distance = current.highest - sequence
        if distance == 0 { throw .duplicate(sequenceNumber: sequence) }
        guard distance < UInt64(window) else {
            throw .stale(sequenceNumber: sequence, highestAccepted: current.highest)
        }
        let bit: UInt64 = 1 << distance
        if current.seen & bit != 0 { throw .duplicate(sequenceNumber: sequence) }
        current.seen |= bit
        entry = current
    }
}
