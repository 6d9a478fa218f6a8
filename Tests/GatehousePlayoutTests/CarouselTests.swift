import GatehouseCore
import GatehouseTS
import Testing

@testable import GatehousePlayout

/// A section of `payload` bytes with a recognisable id in its table_id_extension.
func testSection(id: Int64, payload: Int = 40) -> [UInt8] {
    let length = 5 + payload + 4
    var s: [UInt8] = [
        0x82, 0xB0 | UInt8(length >> 8), UInt8(length & 0xFF), UInt8(id >> 8 & 0xFF), UInt8(id & 0xFF), 0xC1, 0, 0,
    ]
    s += [UInt8](repeating: UInt8(truncatingIfNeeded: id), count: payload)
    let crc = CRC32MPEG2.checksum(s)
    s += [UInt8(crc >> 24), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc & 0xFF)]
    return s
}

@Suite("Carousel scheduling (fake clock)")
struct CarouselTests {
    func emm(
        _ id: Int64, first: Int64 = 0, interval: Int64 = 1000, expires: Int64 = 1_000_000, urgent: Bool = false,
        sent: Int64 = 0, last: Int64? = nil
    ) -> CarouselEMM {
        CarouselEMM(
            id: id, section: testSection(id: id), firstSendAt: first, repeatIntervalMilliseconds: interval,
            expiresAt: expires, isUrgent: urgent, sendCount: sent, lastSentAt: last)
    }

    /// Drains everything due at `now` (no early fill) and returns the ids in pick order.
    func drain(_ c: inout EMMCarousel, now: Int64, limit: Int = 1000) -> [Int64] {
        var out: [Int64] = []
        while out.count < limit, let next = c.peek(now: now) {
            out.append(next.id)
            c.markSent(next, now: now)
        }
        return out
    }

    @Test func newBeforeRepeatUrgentFirst() {
        var c = EMMCarousel()
        #expect(c.insert(emm(1, interval: 100), now: 0) == .scheduled)
        #expect(c.insert(emm(2, interval: 100), now: 0) == .scheduled)
        #expect(drain(&c, now: 0) == [1, 2])
        // At 100 both are due for repetition; new ones arrive at the same time.
        #expect(c.insert(emm(3), now: 100) == .scheduled)
        #expect(c.insert(emm(4, urgent: true), now: 100) == .scheduled)
        #expect(c.insert(emm(5, interval: 50, urgent: true, sent: 1, last: 0), now: 100) == .scheduled)
        // new urgent, new, urgent repeat, then routine repeats by due time.
        #expect(drain(&c, now: 100) == [4, 3, 5, 1, 2])
        #expect(c.backlogCount == 0)
    }

    @Test func repeatsOnIntervalAndExpires() {
        var c = EMMCarousel()
        #expect(c.insert(emm(1, interval: 300, expires: 1000), now: 0) == .scheduled)
        var sends: [Int64] = []
        for t in stride(from: Int64(0), through: 1500, by: 10) where !drain(&c, now: t).isEmpty { sends.append(t) }
        #expect(sends == [0, 300, 600, 900])
        #expect(c.liveCount == 0)
        #expect(c.expiredCount == 1)
    }

    @Test func withdrawnEMMsLeaveTheAirAtOnceEvenAsFill() {
        var c = EMMCarousel(minimumEarlyRepeatSpacing: 0)
        #expect(c.insert(emm(1, interval: 10_000), now: 0) == .scheduled)
        #expect(c.insert(emm(2, interval: 10_000), now: 0) == .scheduled)
        #expect(drain(&c, now: 0) == [1, 2])
        // The worker cancelled the entitlement behind EMM 1.
        #expect(c.withdraw(ids: [1, 99], now: 500) == 1)
        var fill: [Int64] = []
        for t in stride(from: Int64(600), to: 30_000, by: 300) {
            if let next = c.peek(now: t, allowEarly: true) {
                fill.append(next.id)
                c.markSent(next, now: t)
            }
        }
        #expect(!fill.isEmpty)
        #expect(!fill.contains(1))
        #expect(c.liveCount == 1)
    }

    @Test func futureEMMIsHeldUntilDue() {
        var c = EMMCarousel()
        #expect(c.insert(emm(7, first: 5000, interval: 1000, expires: 20_000), now: 0) == .scheduled)
        #expect(c.insert(emm(8, interval: 100_000), now: 0) == .scheduled)
        #expect(drain(&c, now: 0) == [8])
        // Even the early fill never sends a new EMM before first_send_at.
        c.minimumEarlyRepeatSpacing = 0
        var early: [Int64] = []
        for t in stride(from: Int64(1), to: 5000, by: 500) {
            if let e = c.peek(now: t, allowEarly: true) {
                early.append(e.id)
                c.markSent(e, now: t)
            }
        }
        #expect(!early.contains(7))
        #expect(early.allSatisfy { $0 == 8 })
        #expect(drain(&c, now: 4999).isEmpty)
        #expect(drain(&c, now: 5000) == [7])
    }

    @Test func expiredAndInvalidAreRefused() {
        var c = EMMCarousel()
        #expect(c.insert(emm(1, expires: 100), now: 100) == .expired)
        #expect(c.insert(emm(2, first: 200, expires: 200), now: 0) == .expired)
        var bad = emm(3)
        bad.section.removeLast()
        if case .invalid = c.insert(bad, now: 0) {} else { Issue.record("a short section must be invalid") }
        #expect(c.liveCount == 0)
    }

    @Test func sendOnceWhenIntervalIsZero() {
        var c = EMMCarousel()
        #expect(c.insert(emm(1, interval: 0), now: 0) == .scheduled)
        #expect(drain(&c, now: 0) == [1])
        #expect(drain(&c, now: 10_000).isEmpty)
        #expect(c.liveCount == 0)
    }

    @Test func expiredEMMDroppedAtExpiryEvenWithLongInterval() {
        var c = EMMCarousel()
        #expect(c.insert(emm(1, interval: 1_000_000, expires: 5000), now: 0) == .scheduled)
        #expect(drain(&c, now: 0) == [1])
        #expect(c.liveCount == 1)
        _ = c.peek(now: 5000)
        #expect(c.liveCount == 0)
    }

    @Test func earlyFillWalksEveryLiveEMMInTurnAndRespectsSpacing() {
        var c = EMMCarousel(minimumEarlyRepeatSpacing: 500)
        #expect(c.insert(emm(1, interval: 10_000), now: 0) == .scheduled)
        #expect(c.insert(emm(2, interval: 3_000), now: 0) == .scheduled)
        #expect(c.insert(emm(3, first: 50_000, interval: 3_000), now: 0) == .scheduled)  // not yet due: never filled
        #expect(drain(&c, now: 0) == [1, 2])
        #expect(c.peek(now: 100, allowEarly: true) == nil)  // both sent < 500 ms ago
        var order: [Int64] = []
        for t in [Int64(600), 700, 800, 1200, 1300] {
            if let e = c.peek(now: t, allowEarly: true) {
                #expect(e.isEarly)
                order.append(e.id)
                c.markSent(e, now: t)
            }
        }
        // Both take turns; neither is sent again within 500 ms; the scheduled repeats stay due.
        #expect(order == [1, 2, 1, 2])
        #expect(drain(&c, now: 3_000) == [2])
    }

    @Test func sameOrderAfterRestartFromStoredCounts() {
        // After a restart, EMMs sent before are repeats (not new), due at last_sent + interval.
        var c = EMMCarousel()
        #expect(c.insert(emm(1, interval: 1000, sent: 3, last: 500), now: 1000) == .scheduled)
        #expect(c.insert(emm(2), now: 1000) == .scheduled)
        #expect(c.backlogCount == 1)
        #expect(drain(&c, now: 1000) == [2])
        #expect(drain(&c, now: 1500) == [1])
    }

    @Test func arenaCompactsAndSectionsStayIntact() {
        var c = EMMCarousel()
        for id in Int64(1)...30_000 { _ = c.insert(emm(id, interval: 10, expires: id <= 20_000 ? 50 : 10_000), now: 0) }
        _ = drain(&c, now: 0, limit: 100_000)
        _ = c.peek(now: 60)  // drops the first 20 000 as they surface
        var seen = 0
        while let next = c.peek(now: 60) {
            #expect(c.section(of: next) == testSection(id: next.id))
            c.markSent(next, now: 60)
            seen += 1
            if seen > 20_000 { break }
        }
        #expect(seen == 10_000)
        #expect(c.liveCount == 10_000)
    }

    @Test func costStaysLogarithmic() {
        // 200 000 live EMMs, 20 000 picks: bounded in count; time reported by the benchmark.
        var c = EMMCarousel()
        c.reserveCapacity(200_000, sectionBytes: 60)
        for id in Int64(1)...200_000 { _ = c.insert(emm(id, interval: 600_000), now: 0) }
        #expect(c.liveCount == 200_000)
        var picks = 0
        while picks < 20_000, let next = c.peek(now: 0) {
            c.markSent(next, now: 0)
            picks += 1
        }
        #expect(picks == 20_000)
        #expect(c.backlogCount == 180_000)
        #expect(c.approximateMemoryBytes < 200_000 * (60 + 120))
    }
}
