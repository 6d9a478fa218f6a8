import Foundation
import GatehouseCore
import Synchronization
import Testing

/// The service runner: one ending service stops the rest, a signal stops them all, and when
/// `run` returns the process has its signals back and no shutdown timer left to fire.
@Suite("Service runner", .serialized)
struct ServiceRunnerTests {
    /// What the services did, in order.
    final class Journal: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    /// Runs until cancelled.
    struct Idle: GatehouseService {
        let name: String
        let journal: Journal
        func run() async throws {
            journal.add("\(name) started")
            do {
                try await Task.sleep(for: .seconds(600))
            } catch {
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

    /// Waits (bounded) until `condition` holds.
    private func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    /// One process, two runs: a failing service stops the others (and its error comes out),
    /// then a second runner hears SIGTERM and stops every service gracefully.
    @Test
    func aFailureStopsTheOthersAndALaterRunnerStillHearsSigterm() async throws {
        let failed = Journal()
        let first = ServiceRunner(
            services: [Idle(name: "idle", journal: failed), Failing()], logger: .disabled, gracePeriodSeconds: 0.5)
        let error = await #expect(throws: GatehouseError.self) { try await first.run() }
        #expect(error?.code == .database)
        #expect(failed.all == ["idle started", "idle stopped"])
        // The shutdown's watchdog (0.5 s) ended with the run: were it still armed, this test
        // process would exit with status 1 during this wait.
        try await Task.sleep(for: .seconds(1))

        let journal = Journal()
        let second = ServiceRunner(
            services: [Idle(name: "a", journal: journal), Idle(name: "b", journal: journal)], logger: .disabled,
            gracePeriodSeconds: 0.5)
        let finished = Mutex<Bool>(false)
        async let run: Void = {
            try await second.run()
            finished.withLock { $0 = true }
        }()
        #expect(await eventually { journal.all.filter { $0.hasSuffix("started") }.count == 2 })
        kill(getpid(), SIGTERM)  // taken by the runner, not the default action
        // When it did not, leaving the scope cancels the run, so the test ends either way.
        try #require(await eventually { finished.withLock { $0 } }, "SIGTERM did not stop the runner")
        try await run
        #expect(Set(journal.all) == ["a started", "b started", "a stopped", "b stopped"])
        try await Task.sleep(for: .seconds(1))
    }
}
