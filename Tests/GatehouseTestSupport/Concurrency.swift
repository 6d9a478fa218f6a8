import Foundation

/// SplitMix64: a small seeded generator, so a randomised or fuzz test sees the same inputs
/// on every run and a failure reproduces.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs `work(index)` on `count` new threads (real OS threads, for code that blocks the way
/// libmicrohttpd's workers do) and returns when all have finished, without blocking the
/// caller's thread of the cooperative pool.
public func onThreads(_ count: Int, _ work: @escaping @Sendable (Int) -> Void) async {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            work(index)
        }
    }
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            group.wait()
            done.resume()
        }
    }
}

/// Waits until `condition` holds, polling every 10 ms, for at most `seconds`; whether it held.
public func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
