/// A continuity_counter problem on one PID (ISO/IEC 13818-1 §2.4.3.3).
public struct ContinuityError: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The counter jumped: `count` packets are missing (1–15; a multiple of 16 cannot be seen).
        case missingPackets(count: Int)
        /// A third (or later) copy of the same packet: only one duplicate is legal.
        case repeatedPacket
        /// The counter changed on a packet without payload, where it must stay put.
        case advancedWithoutPayload(expected: UInt8, found: UInt8)
    }

    public var pid: UInt16
    /// The index of the offending packet in the stream (0-based, counting every packet fed).
    public var packetIndex: Int
    public var kind: Kind

    public init(pid: UInt16, packetIndex: Int, kind: Kind) {
        self.pid = pid
        self.packetIndex = packetIndex
        self.kind = kind
    }

    public var description: String {
        let where_ = "PID 0x\(hex4(pid)) packet \(packetIndex)"
        switch kind {
        case .missingPackets(let count): return "\(where_): \(count) packet(s) missing"
        case .repeatedPacket: return "\(where_): packet repeated more than once"
        case .advancedWithoutPayload(let expected, let found):
            return "\(where_): counter \(found) on a packet without payload, expected \(expected)"
        }
    }
}

/// Tracks continuity_counter on every PID, with the rules of the samples (TSDuck's):
///
/// - a packet with payload carries the previous counter + 1 (mod 16);
/// - the same counter again is a duplicate: one is legal (its payload is to be ignored),
///   a third copy is an error;
/// - any other jump is an error (`missingPackets`) and the section being assembled is lost;
/// - a packet without payload carries the counter of the previous packet: a change is an error;
/// - discontinuity_indicator set: whatever the counter, no error;
/// - null packets (PID 0x1FFF) are not checked; the first packet of a PID sets the counter.
public struct ContinuityChecker: Sendable {
    /// What one packet means for its PID's continuity.
    public enum Verdict: Sendable, Hashable {
        /// In sequence (or the first packet seen on the PID, or a packet without payload that kept the counter).
        case inSequence
        /// The one legal duplicate: ignore its payload.
        case duplicate
        /// discontinuity_indicator announced a jump (or a counter reset): no error, but do not join data across it.
        case discontinuity
        case error(ContinuityError.Kind)
    }

    /// Last counter per PID; 0xFF = no packet seen yet.
    private var lastCounter: [UInt8]
    /// How many copies of the last packet arrived after it.
    private var duplicateCount: [UInt8]

    public init() {
        lastCounter = [UInt8](repeating: 0xFF, count: TS.pidCount)
        duplicateCount = [UInt8](repeating: 0, count: TS.pidCount)
    }

    /// Applies one packet's counter and says what it means.
    public mutating func check(
        pid: UInt16, continuityCounter cc: UInt8, hasPayload: Bool, discontinuityIndicator: Bool
    ) -> Verdict {
        let index = Int(pid & TS.PID.maximum)
        if pid == TS.PID.null { return .inSequence }
        let last = lastCounter[index]
        if last == 0xFF {
            lastCounter[index] = cc
            duplicateCount[index] = 0
            return .inSequence
        }
        if discontinuityIndicator {
            lastCounter[index] = cc
            duplicateCount[index] = 0
            return (cc == (last &+ 1) & 0x0F || (!hasPayload && cc == last)) ? .inSequence : .discontinuity
        }
        if !hasPayload {
            guard cc == last else {
                lastCounter[index] = cc
                duplicateCount[index] = 0
                return .error(.advancedWithoutPayload(expected: last, found: cc))
            }
            return .inSequence
        }
        if cc == last {
            let copies = duplicateCount[index] &+ 1
            duplicateCount[index] = min(copies, 2)
            return copies == 1 ? .duplicate : .error(.repeatedPacket)
        }
        lastCounter[index] = cc
        duplicateCount[index] = 0
        let expected = (last &+ 1) & 0x0F
        if cc == expected { return .inSequence }
        return .error(.missingPackets(count: Int((cc &- expected) & 0x0F)))
    }

    /// Forgets one PID (its next packet sets the counter again).
    public mutating func reset(pid: UInt16) {
        lastCounter[Int(pid & TS.PID.maximum)] = 0xFF
        duplicateCount[Int(pid & TS.PID.maximum)] = 0
    }

    /// Forgets every PID, e.g. after the input was restarted.
    public mutating func resetAll() {
        for i in 0..<TS.pidCount {
            lastCounter[i] = 0xFF
            duplicateCount[i] = 0
        }
    }
}

@usableFromInline
func hex4(_ value: UInt16) -> String {
    let s = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}

@usableFromInline
func hex2(_ value: UInt8) -> String {
    let s = String(value, radix: 16, uppercase: true)
    return s.count == 1 ? "0" + s : s
}
