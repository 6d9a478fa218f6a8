import GatehouseTS

/// Continuity counters and the RTP sequence: the state a receiver checks across datagrams.
/// Kept by `PlayoutService` between runs so a restarted carousel carries on without a
/// continuity error.
public struct PlayoutStreamState: Sendable, Equatable {
    public var catContinuityCounter: UInt8 = 0
    public var emmContinuityCounter: UInt8 = 0
    public var rtpSequenceNumber: UInt16 = 0
    public var rtpSSRC: UInt32 = 0

    public init(
        catContinuityCounter: UInt8 = 0, emmContinuityCounter: UInt8 = 0, rtpSequenceNumber: UInt16 = 0,
        rtpSSRC: UInt32 = 0
    ) {
        self.catContinuityCounter = catContinuityCounter
        self.emmContinuityCounter = emmContinuityCounter
        self.rtpSequenceNumber = rtpSequenceNumber
        self.rtpSSRC = rtpSSRC
    }
}

/// What one datagram holds.
public struct DatagramSummary: Sendable, Equatable {
    public var catPackets = 0
    public var emmPackets = 0
    public var nullPackets = 0
    /// EMMs whose first packet is in this datagram (or in the part of their burst that carried over).
    public var emmsStarted = 0
    public var tsPackets: Int { catPackets + emmPackets + nullPackets }
    public init() {}
}

/// Turns the carousel into datagrams: the CAT on its interval, EMM sections packed back to
/// back on the EMM PID, null packets to complete a datagram, and the optional RTP header.
/// Pure (the caller passes `now`), so tests check its bytes without a socket.
public struct PlayoutStream {
    public let configuration: PlayoutConfiguration
    private var catPacketizer: SectionPacketizer
    private var emmPacketizer: SectionPacketizer
    private let catSection: [UInt8]
    private var nextCATAt: Int64 = Int64.min
    /// Packets of a burst that did not fit the last datagram.
    private var carry: [UInt8] = []
    private var carryOffset = 0
    private var rtpSequence: UInt16
    private let ssrc: UInt32
    private var burst: [[UInt8]] = []
    private var burstSizes: [Int] = []
    private var scratch: [UInt8] = []
    /// EMM ids sent in the last datagram (for the write-back), in order.
    public private(set) var lastSentIDs: [Int64] = []

    /// The null packet (PID 0x1FFF, payload only, 0xFF bytes). Receivers ignore its counter.
    public static let nullPacket: [UInt8] = [TS.syncByte, 0x1F, 0xFF, 0x10] + [UInt8](repeating: 0xFF, count: 184)

    /// - Throws: `GatehouseError`-free: the CAT of one CA_descriptor always encodes.
    public init(configuration: PlayoutConfiguration, state: PlayoutStreamState = PlayoutStreamState()) {
        self.configuration = configuration
        catPacketizer = SectionPacketizer(pid: TS.PID.cat, continuityCounter: state.catContinuityCounter)
        emmPacketizer = SectionPacketizer(pid: configuration.emmPID, continuityCounter: state.emmContinuityCounter)
        let cat = ConditionalAccessTable(
            caDescriptors: [CADescriptor(caSystemID: configuration.caSystemID, caPID: configuration.emmPID)])
        // One CA_descriptor is 8 bytes: far below the 1021-byte limit, so this cannot throw.
        catSection = (try? cat.encoded()) ?? []
        rtpSequence = state.rtpSequenceNumber
        ssrc = state.rtpSSRC
        burst.reserveCapacity(32)
        burstSizes.reserveCapacity(32)
    }

    /// Counters to hand to the next stream after a restart. Packets still carried over are
    /// lost with this value, so the EMM counter is rewound past them (they were never sent).
    public var state: PlayoutStreamState {
        let unsent = (carry.count - carryOffset) / TS.packetSize
        return PlayoutStreamState(
            catContinuityCounter: catPacketizer.continuityCounter,
            emmContinuityCounter: UInt8((Int(emmPacketizer.continuityCounter) - unsent % 16 + 16) % 16),
            rtpSequenceNumber: rtpSequence, rtpSSRC: ssrc)
    }

    /// The CAT section this stream sends.
    public var conditionalAccessSection: [UInt8] { catSection }

    /// Builds the next datagram into `out` (cleared first) at wall-clock time `now` (ms since
    /// the epoch) with `rtpTimestamp` (90 kHz) when RTP is on.
    /// - Returns: what it holds, or nil when there was nothing to send and the fill is `.none`
    ///   (then `out` is empty).
    public mutating func nextDatagram(
        carousel: inout EMMCarousel, now: Int64, rtpTimestamp: UInt32 = 0,
        into out: inout [UInt8]
    ) -> DatagramSummary? {
        out.removeAll(keepingCapacity: true)
        lastSentIDs.removeAll(keepingCapacity: true)
        if configuration.isRTPEnabled { appendRTPHeader(to: &out, timestamp: rtpTimestamp) }
        let tsStart = out.count
        let capacity = configuration.packetsPerDatagram
        var summary = DatagramSummary()
        if now >= nextCATAt {
            // catSection is a valid section (built above), so packetizing cannot fail.
            let before = out.count
            try? catPacketizer.packetize([catSection], into: &out)
            summary.catPackets = (out.count - before) / TS.packetSize
            nextCATAt =
                nextCATAt == Int64.min || now - nextCATAt > Int64(configuration.catIntervalMilliseconds)
                ? now + Int64(configuration.catIntervalMilliseconds)
                : nextCATAt + Int64(configuration.catIntervalMilliseconds)
        }
        let allowEarly = configuration.fill == .earlyRepeats
        while (out.count - tsStart) / TS.packetSize < capacity {
            let room = capacity - (out.count - tsStart) / TS.packetSize
            if carryOffset < carry.count {
                let take = min(room * TS.packetSize, carry.count - carryOffset)
                out.append(contentsOf: carry[carryOffset..<(carryOffset + take)])
                carryOffset += take
                summary.emmPackets += take / TS.packetSize
                continue
            }
            // A new burst: as many due EMMs as fill the room (the first one even if it does not fit).
            burst.removeAll(keepingCapacity: true)
            burstSizes.removeAll(keepingCapacity: true)
            while let candidate = carousel.peek(now: now, allowEarly: allowEarly) {
                burstSizes.append(carousel.sectionLength(of: candidate))
                let packets = SectionPacketizer.packetCount(sectionSizes: burstSizes, packing: .backToBack)
                if packets > room && !burst.isEmpty {
                    burstSizes.removeLast()
                    break
                }
                burst.append(carousel.section(of: candidate))
                carousel.markSent(candidate, now: now)
                lastSentIDs.append(candidate.id)
                if packets >= room { break }
            }
            guard !burst.isEmpty else { break }
            summary.emmsStarted += burst.count
            scratch.removeAll(keepingCapacity: true)
            // Sections were validated on insert (sectionProblem), so this cannot fail.
            try? emmPacketizer.packetize(burst, into: &scratch)
            let take = min(room * TS.packetSize, scratch.count)
            out.append(contentsOf: scratch[0..<take])
            summary.emmPackets += take / TS.packetSize
            carry.removeAll(keepingCapacity: true)
            carry.append(contentsOf: scratch[take...])
            carryOffset = 0
        }
        let used = (out.count - tsStart) / TS.packetSize
        if used == 0 && configuration.fill == .none {
            out.removeAll(keepingCapacity: true)
            if configuration.isRTPEnabled { rtpSequence &-= 1 }
            return nil
        }
        for _ in used..<capacity { out.append(contentsOf: Self.nullPacket) }
        summary.nullPackets = capacity - used
        return summary
    }

    private mutating func appendRTPHeader(to out: inout [UInt8], timestamp: UInt32) {
        // RFC 3550 §5.1 / RFC 2250: V=2, no padding, extension or CSRC; PT 33 (MP2T).
        out.append(0x80)
        out.append(TS.rtpPayloadTypeMP2T)
        out.append(UInt8(rtpSequence >> 8))
        out.append(UInt8(rtpSequence & 0xFF))
        rtpSequence &+= 1
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8((timestamp >> UInt32(shift)) & 0xFF)) }
        for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8((ssrc >> UInt32(shift)) & 0xFF)) }
    }
}

/// A token bucket on a virtual clock: datagram k may leave at start + k × interval, so the
/// long-run rate is exact whatever the wake-up jitter; after a stall the sender may catch up
/// at most `depth` of lost time (a bounded burst) and then gives up the rest rather than
/// exceeding the rate.
public struct PacingClock: Sendable {
    /// Nanoseconds between datagrams: TS bits per datagram / bit rate.
    public let interval: Double
    /// Lost time the sender may catch up, in nanoseconds.
    public let depth: Double
    private var next: Double

    /// - Parameters:
    ///   - bitRate: TS bit rate (188-byte packets × 8).
    ///   - packetsPerDatagram: TS packets each datagram carries.
    ///   - start: monotonic nanoseconds of the first send.
    public init(bitRate: Int, packetsPerDatagram: Int, start: UInt64) {
        interval = Double(packetsPerDatagram * TS.packetSize * 8) * 1e9 / Double(bitRate)
        // 50 ms: a sender thread delayed by a busy host (run-queue waits of tens of ms are
        // common with a load above the core count) catches up and keeps the 10 s average,
        // while a burst stays far below a multiplexer's input buffer.
        depth = max(2 * interval, 50_000_000)
        next = Double(start)
    }

    /// When the next datagram may leave (monotonic ns).
    public var nextSendTime: UInt64 { UInt64(max(0, next)) }

    /// Call after sending at `now`: moves the virtual clock one interval on, and drops credit
    /// older than `depth`.
    public mutating func didSend(now: UInt64) {
        let floor = Double(now) - depth
        if next < floor { next = floor }
        next += interval
    }

    /// Call when there was nothing to send at `now` (fill `.none`): no credit builds up.
    public mutating func wasIdle(now: UInt64) {
        if next < Double(now) { next = Double(now) }
    }
}
