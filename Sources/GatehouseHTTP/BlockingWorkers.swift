import Dispatch
import Foundation
import Synchronization

/// A fixed set of OS threads that run jobs which block (a handler waiting for its group
/// commit), first come first served.
///
/// Not Swift's cooperative pool (blocking it starves async code) and not libdispatch's
/// global queues (on Linux they do not add threads when jobs block, so a few slow commits
/// would stall every write). Threads start with the pool and exit in `stop()`.
final class BlockingWorkers: Sendable {
    private struct Queue {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var isStopping = false
    }

    private let queue = Mutex(Queue())
    /// One signal per job queued, plus one per thread at stop.
    private let available = DispatchSemaphore(value: 0)
    /// One signal per thread that has exited.
    private let exited = DispatchSemaphore(value: 0)
    let threadCount: Int

    /// Starts `threadCount` threads named `name`.
    init(threadCount: Int, name: String) {
        precondition(threadCount > 0, "a blocking pool needs at least one thread")
        self.threadCount = threadCount
        for index in 0..<threadCount {
            let thread = Thread { [self] in work() }
            thread.name = "\(name)-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Queues `job`; a free thread runs it.
    func submit(_ job: @escaping @Sendable () -> Void) {
        queue.withLock { $0.jobs.append(job) }
        available.signal()
    }

    /// Lets the queued jobs finish, then ends the threads and waits for them. Idempotent.
    func stop() {
        let wasStopping = queue.withLock { queue in
            defer { queue.isStopping = true }
            return queue.isStopping
        }
        guard !wasStopping else { return }
        for _ in 0..<threadCount { available.signal() }
        for _ in 0..<threadCount { exited.wait() }
    }

    private func work() {
        while true {
            available.wait()
            let job: (@Sendable () -> Void)? = queue.withLock { queue in
                guard queue.head < queue.jobs.count else { return nil }
                let job = queue.jobs[queue.head]
                queue.head += 1
                if queue.head == queue.jobs.count {
                    queue.jobs.removeAll(keepingCapacity: true)
                    queue.head = 0
                } else if queue.head >= 1024 {
                    queue.jobs.removeFirst(queue.head)
                    queue.head = 0
                }
                return job
            }
            guard let job else {
                // No job for this signal: only `stop()` signals without queueing one.
                if queue.withLock({ $0.isStopping }) {
                    exited.signal()
                    return
                }
                continue
            }
            job()
        }
    }
}
