import Dispatch
import Foundation
import GatehouseCore
import GatehouseTestSupport
import Synchronization
import Testing

/// The service runner: one ending service stops the rest, a signal stops them all, the stop
/// and the cleanup are bounded, a second signal does not wait, and a later runner in the same
/// process hears its signals. `exitNow` records instead of ending the test process.
@Suite("Service runner", .serialized)
struct ServiceRunnerTests {
    /// What the services, the cleanup and `exitNow` did, in order.
    final class Journal: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    /// Runs until cancelled; then takes `stopping` seconds to stop, whatever the cancellation
    /// says (a service stuck in its shutdown).
    struct Idle: GatehouseService {
        let name: String
        let journal: Journal
        var stopping: Double = 0
        func run() async throws {
            journal.add("\(name) started")
            do {
                try await Task.sleep(for: .seconds(600))
            } catch {
                journal.add("\(name) stopping")
                if stopping > 0 {
                    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                        DispatchQueue.global().asyncAfter(deadline: .now() + stopping) { done.resume() }
                    }
                }
                journal.add("\(name) stopped")
                throw error
            }
        }
    }

    /// Fails shortly after it starts.
    struct Failing: GatehouseService {
        let name = "failing"
        func run() async throws {
            try await Task.sleep(for: .milliseconds(50))
            throw GatehouseError(.database, "the store is gone")
        }
    }

    private func runner(_ services: [any GatehouseService], grace: Double, journal: Journal) -> ServiceRunner {
        var runner = ServiceRunner(services: services, logger: .disabled, gracePeriodSeconds: grace)
        runner.exitNow = { journal.add("exit now") }
        return runner
    }

    @Test
    func aFailureStopsTheOthersThenCleansUpAndTheBoundEndsWithTheRun() async throws {
        let journal = Journal()
        let first = runner([Idle(name: "idle", journal: journal), Failing()], grace: 2, journal: journal)
        let error = await #expect(throws: GatehouseError.self) {
            try await first.run { journal.add("cleanup") }
        }
        #expect(error?.code == .database)
        #expect(journal.all == ["idle started", "idle stopping", "idle stopped", "cleanup"])
        // The bound (2 s) ended with the run: nothing fires after it.
        try await Task.sleep(for: .milliseconds(2500))
        #expect(!journal.all.contains("exit now"))
    }

    @Test
    func aStopStuckPastTheBoundEndsTheProcessEvenAfterAFailure() async throws {
        let journal = Journal()
        let stuck = runner(
            [Idle(name: "stuck", journal: journal, stopping: 1.5), Failing()], grace: 0.3, journal: journal)
        await #expect(throws: GatehouseError.self) { try await stuck.run { journal.add("cleanup") } }
        // exitNow came while the stuck service was still stopping (here it returns, so the run went on).
        #expect(journal.all == ["stuck started", "stuck stopping", "exit now", "stuck stopped", "cleanup"])
    }

    /// A supervisor's SIGTERM during a stop that a failure began waits for it, as a first
    /// signal should; a second one does not wait. Then a later runner hears SIGTERM and stops
    /// every service gracefully.
    @Test
    func signalsDuringAStopAndALaterRunner() async throws {
        let journal = Journal()
        let failed = runner(
            [Idle(name: "slow", journal: journal, stopping: 1), Failing()], grace: 10, journal: journal)
        let failedRun = Task { try await failed.run { journal.add("cleanup") } }
        #expect(await eventually { journal.all.contains("slow stopping") })
        kill(getpid(), SIGTERM)
        try await Task.sleep(for: .milliseconds(200))
        #expect(!journal.all.contains("exit now"), "a first signal waits for the graceful stop")
        kill(getpid(), SIGINT)
        #expect(await eventually { journal.all.contains("exit now") }, "a second signal does not wait")
        await #expect(throws: GatehouseError.self) { try await failedRun.value }
        #expect(journal.all.last == "cleanup")

        let later = Journal()
        let second = runner([Idle(name: "a", journal: later), Idle(name: "b", journal: later)], grace: 10, journal: later)
        let finished = Mutex<Bool>(false)
        async let run: Void = {
            try await second.run()
            finished.withLock { $0 = true }
        }()
        #expect(await eventually { later.all.filter { $0.hasSuffix("started") }.count == 2 })
        kill(getpid(), SIGTERM)  // taken by the runner, not the default action
        // When it was not, leaving the scope cancels the run, so the test ends either way.
        try #require(await eventually { finished.withLock { $0 } }, "SIGTERM did not stop the runner")
        try await run
        #expect(Set(later.all) == ["a started", "b started", "a stopping", "b stopping", "a stopped", "b stopped"])
        #expect(!later.all.contains("exit now"))
    }
}
