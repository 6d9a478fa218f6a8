import GatehouseTS

/// One stored EMM as the carousel needs it: the finished section and its schedule
/// (a row of the `emms` table; times are milliseconds since the epoch, UTC).
public struct CarouselEMM: Sendable, Equatable {
    public var id: Int64
    /// The complete private section, ready to packetize.
    public var section: [UInt8]
    /// Not sent before this time.
    public var firstSendAt: Int64
    /// Repeated this often while live; 0 or less: sent once.
    public var repeatIntervalMilliseconds: Int64
    /// Sent while `now < expiresAt`, dropped after.
    public var expiresAt: Int64
    /// Urgent EMMs (e.g. forced OSMs) go ahead of routine ones.
    public var isUrgent: Bool
    /// Times sent before (from the store after a restart): 0 means new.
    public var sendCount: Int64
    public var lastSentAt: Int64?

    public init(
        id: Int64, section: [UInt8], firstSendAt: Int64, repeatIntervalMilliseconds: Int64, expiresAt: Int64,
        isUrgent: Bool = false, sendCount: Int64 = 0, lastSentAt: Int64? = nil
    ) {
        self.id = id
        self.section = section
        self.firstSendAt = firstSendAt
        self.repeatIntervalMilliseconds = repeatIntervalMilliseconds
        self.expiresAt = expiresAt
        self.isUrgent = isUrgent
        self.sendCount = sendCount
        self.lastSentAt = lastSentAt
    }

    /// Why a stored section cannot go on air, or nil when it can: it must be one whole
    /// section (3 + section_length bytes, at most 4096) not starting with 0xFF.
    public var sectionProblem: String? {
        guard section.count >= TS.sectionHeaderSize else { return "section of \(section.count) bytes" }
        let length = Int(section[1] & 0x0F) << 8 | Int(section[2])
        guard length <= TS.maximumSectionLength else { return "section_length \(length) above 4093" }
        guard section.count == TS.sectionHeaderSize + length else {
            return "section of \(section.count) bytes but section_length \(length)"
        }
        guard section[0] != TS.stuffingByte else { return "table_id 0xFF" }
        return nil
    }
}

/// The EMM carousel's schedule: pure logic, no I/O and no clock of its own (every call
/// takes `now`), so tests drive it with a fake clock.
///
/// Four binary heaps, one per class, in priority order: new urgent, new, urgent repeat,
/// repeat. Each is keyed by (due time, id). A pick looks at the four tops and takes the
/// first whose due time has come: O(1) to look, O(log n) to reschedule; nothing ever
/// scans every EMM. A new EMM sits in its "new" heap with due = first_send_at, so an EMM
/// for later is held simply by not being due. After a send the EMM moves to a repeat heap
/// with due = min(now + interval, expires_at): an EMM surfaces again at its expiry at the
/// latest and is dropped then, so expired EMMs never linger.
///
/// Section bytes live in one contiguous arena (no object per EMM); freed space is
/// reclaimed by compacting when more than half the arena is garbage.
///
/// Not thread-safe: the send loop owns it.
public struct EMMCarousel {
    /// The four classes, highest priority first.
    public enum Priority: Int, Sendable, CaseIterable, CustomStringConvertible {
        case newUrgent = 0, new, urgentRepeat, `repeat`
        public var description: String {
            switch self {
            case .newUrgent: "new_urgent"
            case .new: "new"
            case .urgentRepeat: "urgent_repeat"
            case .repeat: "repeat"
            }
        }
    }

    /// What `peek` found: send it, then call `markSent`.
    public struct Candidate: Sendable, Equatable {
        public var slot: Int
        public var id: Int64
        public var priority: Priority
        /// Picked before its due time to fill spare capacity.
        public var isEarly: Bool
    }

    /// Outcome of `insert`.
    public enum InsertResult: Sendable, Equatable {
        case scheduled
        /// Already expired (or first_send_at is at/after expires_at): not kept.
        case expired
        case invalid(String)
    }

    struct HeapEntry {
        var due: Int64
        var id: Int64
        var slot: UInt32

        @inline(__always) static func < (a: HeapEntry, b: HeapEntry) -> Bool {
            a.due < b.due || (a.due == b.due && a.id < b.id)
        }
    }

    /// A plain array binary min-heap.
    struct Heap {
        var items: [HeapEntry] = []
        var count: Int { items.count }
        var top: HeapEntry? { items.first }

        mutating func push(_ e: HeapEntry) {
            items.append(e)
            var child = items.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                guard e < items[parent] else { break }
                items[child] = items[parent]
                child = parent
            }
            items[child] = e
        }

        @discardableResult
        mutating func pop() -> HeapEntry? {
            guard let first = items.first else { return nil }
            let last = items.removeLast()
            guard !items.isEmpty else { return first }
            var parent = 0
            let n = items.count
            while true {
                var child = 2 * parent + 1
                guard child < n else { break }
                if child + 1 < n && items[child + 1] < items[child] { child += 1 }
                guard items[child] < last else { break }
                items[parent] = items[child]
                parent = child
            }
            items[parent] = last
            return first
        }
    }

    // Per-slot columns (struct of arrays: ~50 bytes per EMM besides its section).
    private var ids: [Int64] = []
    private var expiresAts: [Int64] = []
    private var intervals: [Int64] = []
    private var lastSents: [Int64] = []
    private var offsets: [UInt32] = []
    /// Section length; 0 marks a free slot.
    private var lengths: [UInt16] = []
    private var sendCounts: [UInt32] = []
    private var urgents: [Bool] = []
    private var freeSlots: [UInt32] = []
    private var arena: [UInt8] = []
    private var garbageBytes = 0
    private var heaps = [Heap](repeating: Heap(), count: 4)
    /// Where the fill walk resumes (see `peek(now:allowEarly:)`).
    private var fillCursor = 0

    /// Spacing below which an EMM is not repeated early (fill); see `peek`. Default 1000 ms.
    public var minimumEarlyRepeatSpacing: Int64

    /// EMMs held (live, not expired yet as far as the carousel has seen).
    public private(set) var liveCount = 0
    /// Sum over live EMMs of the packets each takes alone: for the cycle-time estimate.
    public private(set) var livePackets = 0
    /// Bytes of live sections.
    public private(set) var liveSectionBytes = 0
    /// EMMs dropped at expiry since creation.
    public private(set) var expiredCount = 0

    public init(minimumEarlyRepeatSpacing: Int64 = 1000) {
        self.minimumEarlyRepeatSpacing = minimumEarlyRepeatSpacing
    }

    /// Reserves room for `count` EMMs of about `sectionBytes` each.
    public mutating func reserveCapacity(_ count: Int, sectionBytes: Int) {
        ids.reserveCapacity(count)
        expiresAts.reserveCapacity(count)
        intervals.reserveCapacity(count)
        lastSents.reserveCapacity(count)
        offsets.reserveCapacity(count)
        lengths.reserveCapacity(count)
        sendCounts.reserveCapacity(count)
        urgents.reserveCapacity(count)
        arena.reserveCapacity(count * sectionBytes)
        heaps[Priority.repeat.rawValue].items.reserveCapacity(count)
    }

    /// New EMMs not yet sent once (including those held for a later first_send_at).
    public var backlogCount: Int { heaps[0].count + heaps[1].count }

    /// EMMs waiting in each class.
    public func count(of priority: Priority) -> Int { heaps[priority.rawValue].count }

    /// Adds an EMM. One that was sent before (`sendCount > 0`) goes straight to repetition,
    /// due at last_sent_at + interval.
    public mutating func insert(_ emm: CarouselEMM, now: Int64) -> InsertResult {
        if let problem = emm.sectionProblem { return .invalid(problem) }
        let alreadySent = emm.sendCount > 0
        if alreadySent && emm.repeatIntervalMilliseconds <= 0 { return .expired }
        let due: Int64 =
            alreadySent
            ? (emm.lastSentAt ?? now).addingReportingOverflow(emm.repeatIntervalMilliseconds).partialValue
            : emm.firstSendAt
        guard emm.expiresAt > now, due < emm.expiresAt || (alreadySent && now < emm.expiresAt) else { return .expired }
        let length = emm.section.count
        if arena.count + length > Int(UInt32.max) { compact() }
        guard arena.count + length <= Int(UInt32.max) else { return .invalid("carousel arena full (4 GiB)") }
        let offset = UInt32(arena.count)
        arena.append(contentsOf: emm.section)
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = Int(free)
            ids[slot] = emm.id
            expiresAts[slot] = emm.expiresAt
            intervals[slot] = emm.repeatIntervalMilliseconds
            lastSents[slot] = emm.lastSentAt ?? Int64.min
            offsets[slot] = offset
            lengths[slot] = UInt16(length)
            sendCounts[slot] = UInt32(clamping: emm.sendCount)
            urgents[slot] = emm.isUrgent
        } else {
            slot = ids.count
            ids.append(emm.id)
            expiresAts.append(emm.expiresAt)
            intervals.append(emm.repeatIntervalMilliseconds)
            lastSents.append(emm.lastSentAt ?? Int64.min)
            offsets.append(offset)
            lengths.append(UInt16(length))
            sendCounts.append(UInt32(clamping: emm.sendCount))
            urgents.append(emm.isUrgent)
        }
        let priority: Priority =
            alreadySent ? (emm.isUrgent ? .urgentRepeat : .repeat) : (emm.isUrgent ? .newUrgent : .new)
        heaps[priority.rawValue].push(HeapEntry(due: min(due, emm.expiresAt), id: emm.id, slot: UInt32(slot)))
        liveCount += 1
        livePackets += Self.packets(forSectionOf: length)
        liveSectionBytes += length
        return .scheduled
    }

    /// The next EMM to send at `now`, or nil when none is due. Drops expired EMMs it meets.
    ///
    /// With `allowEarly`, when nothing is due it offers the repeat whose next repetition is
    /// nearest (to fill spare capacity), unless that EMM went out less than
    /// `minimumEarlyRepeatSpacing` ago. New EMMs are never sent before first_send_at.
    public mutating func peek(now: Int64, allowEarly: Bool = false) -> Candidate? {
        for index in 0..<4 {
            while let top = heaps[index].top, top.due <= now {
                let slot = Int(top.slot)
                if expiresAts[slot] <= now || (sendCounts[slot] > 0 && intervals[slot] <= 0) {
                    heaps[index].pop()
                    release(slot)
                    continue
                }
                return Candidate(slot: slot, id: top.id, priority: Priority(rawValue: index) ?? .repeat, isEarly: false)
            }
        }
        guard allowEarly, !ids.isEmpty else { return nil }
        // Nothing is due: fill spare capacity by walking every live EMM in turn (a real
        // carousel), so each is repeated as often as the bandwidth allows, not only the
        // one due soonest. A bounded scan per call keeps the cost O(1).
        var scanned = 0
        while scanned < min(ids.count, 512) {
            if fillCursor >= ids.count { fillCursor = 0 }
            let slot = fillCursor
            fillCursor += 1
            scanned += 1
            guard lengths[slot] > 0, sendCounts[slot] > 0, intervals[slot] > 0, expiresAts[slot] > now else { continue }
            guard lastSents[slot] == Int64.min || now - lastSents[slot] >= minimumEarlyRepeatSpacing else { continue }
            return Candidate(slot: slot, id: ids[slot], priority: urgents[slot] ? .urgentRepeat : .repeat, isEarly: true)
        }
        return nil
    }

    /// Takes EMMs off air before their stored expiry: the worker shortens `expires_at`
    /// when an entitlement is cancelled or merged, a key rotates or a device is revoked.
    /// One pass over the slots (withdrawals are rare); the heaps drop them lazily.
    /// - Returns: how many live EMMs were withdrawn.
    @discardableResult
    public mutating func withdraw(ids withdrawn: Set<Int64>, now: Int64) -> Int {
        guard !withdrawn.isEmpty else { return 0 }
        var count = 0
        for slot in 0..<ids.count where lengths[slot] > 0 && withdrawn.contains(ids[slot]) && expiresAts[slot] > now {
            expiresAts[slot] = now
            count += 1
        }
        return count
    }

    /// The section bytes of a candidate (valid until the next mutating call).
    public func withSection<R>(_ candidate: Candidate, _ body: (ArraySlice<UInt8>) throws -> R) rethrows -> R {
        let start = Int(offsets[candidate.slot])
        return try body(arena[start..<(start + Int(lengths[candidate.slot]))])
    }

    /// The section bytes of a candidate as a new array.
    public func section(of candidate: Candidate) -> [UInt8] { withSection(candidate) { Array($0) } }

    /// The section length of a candidate.
    public func sectionLength(of candidate: Candidate) -> Int { Int(lengths[candidate.slot]) }

    /// Records that the candidate just returned by `peek` was sent at `now` and schedules
    /// its next repetition (or drops it when it will not be repeated before it expires).
    public mutating func markSent(_ candidate: Candidate, now: Int64) {
        if candidate.isEarly {
            // An extra send to fill capacity: its scheduled repetition stays as it was.
            guard lengths[candidate.slot] > 0 else { return }
            sendCounts[candidate.slot] &+= 1
            lastSents[candidate.slot] = now
            return
        }
        let index = candidate.priority.rawValue
        guard let top = heaps[index].top, Int(top.slot) == candidate.slot else { return }
        heaps[index].pop()
        let slot = candidate.slot
        sendCounts[slot] &+= 1
        lastSents[slot] = now
        let interval = intervals[slot]
        let expires = expiresAts[slot]
        guard interval > 0 else {
            release(slot)
            return
        }
        let next = now.addingReportingOverflow(interval).partialValue
        guard now < expires else {
            release(slot)
            return
        }
        let priority: Priority = urgents[slot] ? .urgentRepeat : .repeat
        heaps[priority.rawValue].push(HeapEntry(due: min(next, expires), id: ids[slot], slot: UInt32(slot)))
    }

    /// The next time something becomes due (for an idle sender to sleep until), or nil when empty.
    public var nextDueTime: Int64? { heaps.compactMap { $0.top?.due }.min() }

    /// Bytes the carousel holds for its EMMs: columns, heaps, arena (capacity, not just use).
    public var approximateMemoryBytes: Int {
        ids.capacity * 8 + expiresAts.capacity * 8 + intervals.capacity * 8 + lastSents.capacity * 8
            + offsets.capacity * 4 + lengths.capacity * 2 + sendCounts.capacity * 4 + urgents.capacity
            + freeSlots.capacity * 4 + arena.capacity
            + heaps.reduce(0) { $0 + $1.items.capacity * MemoryLayout<HeapEntry>.stride }
    }

    /// Packets one section of `length` bytes takes alone (pointer_field + bytes, 184 per packet).
    @inline(__always) static func packets(forSectionOf length: Int) -> Int {
        (length + 1 + TS.maximumPayloadSize - 1) / TS.maximumPayloadSize
    }

    private mutating func release(_ slot: Int) {
        let length = Int(lengths[slot])
        guard length > 0 else { return }
        lengths[slot] = 0
        freeSlots.append(UInt32(slot))
        garbageBytes += length
        liveCount -= 1
        livePackets -= Self.packets(forSectionOf: length)
        liveSectionBytes -= length
        expiredCount += 1
        if garbageBytes > 1 << 20 && garbageBytes * 2 > arena.count { compact() }
    }

    /// Copies live sections into a fresh arena (O(live bytes), amortised by the half-garbage rule).
    private mutating func compact() {
        var fresh: [UInt8] = []
        fresh.reserveCapacity(arena.count - garbageBytes)
        for slot in 0..<lengths.count where lengths[slot] > 0 {
            let start = Int(offsets[slot])
            offsets[slot] = UInt32(fresh.count)
            fresh.append(contentsOf: arena[start..<(start + Int(lengths[slot]))])
        }
        arena = fresh
        garbageBytes = 0
    }
}
