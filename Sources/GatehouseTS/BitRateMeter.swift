/// Measures bits per second per key (a PID, a table_id…) over sliding windows, e.g. the
/// 1 s and the 10 s that broadcast engineers read. Timestamps come from the caller (any
/// monotonic clock, in nanoseconds), so tests drive it without sleeping.
///
/// Bytes go into buckets of `resolution`; a rate over `window` sums the buckets that end
/// after `now − window` and divides by the window. Memory: `maximumWindow / resolution`
/// counters per key.
public struct BitRateMeter<Key: Hashable & Sendable>: Sendable {
    /// Bucket width in nanoseconds.
    public let resolution: UInt64
    /// The longest window a rate can be asked for, in nanoseconds.
    public let maximumWindow: UInt64
    private let bucketCount: Int
    private var rings: [Key: Ring] = [:]

    private struct Ring: Sendable {
        var bytes: [UInt64]
        /// The bucket number (time / resolution) each slot holds.
        var stamps: [UInt64]

        mutating func add(_ count: UInt64, bucket: UInt64, slot: Int) {
            if stamps[slot] != bucket {
                stamps[slot] = bucket
                bytes[slot] = 0
            }
            bytes[slot] += count
        }
    }

    /// - Parameters:
    ///   - maximumWindow: nanoseconds; default 10 s.
    ///   - resolution: nanoseconds; default 100 ms. Windows are measured to this granularity.
    public init(maximumWindow: UInt64 = 10_000_000_000, resolution: UInt64 = 100_000_000) {
        self.resolution = max(1, resolution)
        self.maximumWindow = max(self.resolution, maximumWindow)
        self.bucketCount = Int((self.maximumWindow + self.resolution - 1) / self.resolution) + 1
    }

    /// Counts `bytes` for `key` at time `now` (nanoseconds).
    public mutating func record(_ key: Key, bytes: Int, at now: UInt64) {
        let bucket = now / resolution
        let slot = Int(bucket % UInt64(bucketCount))
        let count = bucketCount
        rings[key, default: Ring(bytes: [UInt64](repeating: 0, count: count), stamps: [UInt64](repeating: .max, count: count))]
            .add(UInt64(max(0, bytes)), bucket: bucket, slot: slot)
    }

    /// Bits per second for `key` over the `window` (nanoseconds, at most `maximumWindow`) ending at `now`.
    public func bitRate(_ key: Key, window: UInt64, at now: UInt64) -> Double {
        guard let ring = rings[key] else { return 0 }
        return Double(bytes(in: ring, window: window, at: now)) * 8 * 1e9 / Double(windowSpan(window))
    }

    /// Bits per second of all keys together.
    public func totalBitRate(window: UInt64, at now: UInt64) -> Double {
        var total: UInt64 = 0
        for ring in rings.values { total += bytes(in: ring, window: window, at: now) }
        return Double(total) * 8 * 1e9 / Double(windowSpan(window))
    }

    /// The keys seen so far.
    public var keys: [Key] { Array(rings.keys) }

    /// Forgets a key.
    public mutating func remove(_ key: Key) { rings[key] = nil }

    private func windowSpan(_ window: UInt64) -> UInt64 {
        let buckets = max(1, min(window, maximumWindow) / resolution)
        return buckets * resolution
    }

    private func bytes(in ring: Ring, window: UInt64, at now: UInt64) -> UInt64 {
        let buckets = max(1, min(window, maximumWindow) / resolution)
        let current = now / resolution
        let oldest = current >= buckets - 1 ? current - (buckets - 1) : 0
        var total: UInt64 = 0
        for i in 0..<ring.stamps.count where ring.stamps[i] != .max && ring.stamps[i] >= oldest && ring.stamps[i] <= current {
            total += ring.bytes[i]
        }
        return total
    }
}
