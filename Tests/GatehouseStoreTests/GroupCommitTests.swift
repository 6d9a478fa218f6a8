import Foundation
import GatehouseCore
import GatehouseStore
import GatehouseTestSupport
import Synchronization
import Testing

/// Group commit: callers queued behind a running transaction share the next one, every
/// caller gets its own result, and one caller's failure is not another's.
@Suite("Group commit", .serialized)
struct GroupCommitTests {
    /// Waits (bounded) until `condition` holds; false when it never did.
    private func eventually(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<1000 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    /// A fresh database with the `group_probe` table the tests write to, optionally holding
    /// the row `taken` (a key the tests collide with).
    private func probeDatabase(_ kind: StoreKind, withTakenRow: Bool = false) async throws -> TestDatabases.Handle {
        let handle = try await TestDatabases.make(kind)
        try await handle.database.withConnection {
            try $0.execute("CREATE TABLE group_probe (id VARCHAR(32) PRIMARY KEY, n INTEGER)", [])
            if withTakenRow { try $0.execute("INSERT INTO group_probe (id, n) VALUES ('taken', 1)", []) }
        }
        return handle
    }

    /// Holds `committer` with a first piece until `followers` callers have queued behind it,
    /// runs their `piece`s as the next batch, and returns each caller's outcome: "ok" or its
    /// error code's name.
    private func followersBehindAHeldBatch(
        _ committer: GroupCommit, followers: Int,
        piece: @escaping @Sendable (_ index: Int, _ connection: any SQLConnection) throws -> Void
    ) async -> [Int: String] {
        let release = DispatchSemaphore(value: 0)
        let outcomes = Mutex<[Int: String]>([:])
        async let first: Void = onThreads(1) { _ in
            try? committer.run { connection in
                try connection.execute("INSERT INTO group_probe (id, n) VALUES ('first', 0)", [])
                release.wait()
            }
        }
        #expect(await eventually { committer.statistics.transactions == 1 })
        async let others: Void = onThreads(followers) { index in
            let outcome: String
            do {
                try committer.run { connection in try piece(index, connection) }
                outcome = "ok"
            } catch let error as GatehouseError {
                outcome = error.code.name
            } catch {
                outcome = "other"
            }
            outcomes.withLock { $0[index] = outcome }
        }
        #expect(await eventually { committer.waiting == followers })
        release.signal()
        await others
        await first
        return outcomes.withLock { $0 }
    }

    @Test(arguments: StoreKind.allCases)
    func queuedCallersShareOneTransaction(kind: StoreKind) async throws {
        let handle = try await probeDatabase(kind)
        defer { Task { await handle.close() } }
        let database = handle.database
        let committer = GroupCommit(database: database)
        let release = DispatchSemaphore(value: 0)
        let results = Mutex<[Int: Int64]>([:])
        let followers = 20

        // The first caller holds the writer until every follower has queued behind it.
        let firstResult = Mutex<Int64?>(nil)
        async let first: Void = onThreads(1) { _ in
            let value = try? committer.run { connection -> Int64 in
                try connection.execute("INSERT INTO group_probe (id, n) VALUES ('first', 0)", [])
                release.wait()
                return 42
            }
            firstResult.withLock { $0 = value }
        }
        #expect(await eventually { committer.statistics.transactions == 1 })
        async let others: Void = onThreads(followers) { index in
            let value = try? committer.run { connection -> Int64 in
                try connection.execute(
                    "INSERT INTO group_probe (id, n) VALUES (?, ?)", .text("f\(index)"), .int64(Int64(index)))
                return try connection.queryFirst("SELECT n FROM group_probe WHERE id = ?", .text("f\(index)"))!
                    .int64("n")
            }
            results.withLock { $0[index] = value }
        }
        #expect(await eventually { committer.waiting == followers })
        release.signal()
        await others
        await first
        #expect(firstResult.withLock { $0 } == 42)

        #expect(results.withLock { $0 } == Dictionary(uniqueKeysWithValues: (0..<followers).map { ($0, Int64($0)) }))
        #expect(committer.statistics.transactions == 2, "the followers shared one transaction")
        #expect(committer.statistics.pieces == followers + 1)
        let count = try await database.read { try $0.queryFirst("SELECT COUNT(*) AS n FROM group_probe")!.int("n") }
        #expect(count == followers + 1)
    }

    @Test(arguments: StoreKind.allCases)
    func aFailingCallerDoesNotFailItsBatch(kind: StoreKind) async throws {
        let handle = try await probeDatabase(kind, withTakenRow: true)
        defer { Task { await handle.close() } }
        let database = handle.database
        let committer = GroupCommit(database: database)
        let followers = 6
        let outcomes = await followersBehindAHeldBatch(committer, followers: followers) { index, connection in
            // Follower 3 collides with an existing key; the others insert their own row.
            try connection.execute(
                "INSERT INTO group_probe (id, n) VALUES (?, ?)", .text(index == 3 ? "taken" : "f\(index)"),
                .int64(Int64(index)))
        }

        var expected = Dictionary(uniqueKeysWithValues: (0..<followers).map { ($0, "ok") })
        expected[3] = GatehouseError.Code.conflict.name
        #expect(outcomes == expected)
        let rows = try await database.read { connection in
            try connection.query("SELECT id FROM group_probe ORDER BY id").map { try $0.text("id") }
        }
        #expect(rows == ["f0", "f1", "f2", "f4", "f5", "first", "taken"])
        // The first alone, the followers' batch that failed, then the other five together again.
        #expect(committer.statistics.transactions == 3)
        #expect(try await database.read { try $0.queryFirst("SELECT n FROM group_probe WHERE id = 'taken'")!.int("n") } == 1)
    }

    @Test(arguments: StoreKind.allCases)
    func submitReportsEachOutcomeAfterTheCommitWithoutBlocking(kind: StoreKind) async throws {
        let handle = try await probeDatabase(kind, withTakenRow: true)
        defer { Task { await handle.close() } }
        let database = handle.database
        let committer = GroupCommit(database: database)
        let outcomes = Mutex<[Int: String]>([:])
        let done = DispatchSemaphore(value: 0)
        let count = 200
        // From 8 threads at once; submit returns before the commit.
        await onThreads(8) { thread in
            for index in stride(from: thread, to: count, by: 8) {
                committer.submit({ connection -> Int64 in
                    try connection.execute(
                        "INSERT INTO group_probe (id, n) VALUES (?, ?)", .text(index == 77 ? "taken" : "s\(index)"),
                        .int64(Int64(index)))
                    return Int64(index)
                }) { result in
                    // After the commit: the row is there for anyone to read.
                    let outcome: String
                    switch result {
                    case .success(let value):
                        let stored = try? database.readBlocking {
                            try $0.queryFirst("SELECT n FROM group_probe WHERE id = ?", .text("s\(index)"))?.int64("n")
                        }
                        outcome = stored == value ? "ok" : "not visible"
                    case .failure(let error as GatehouseError):
                        outcome = error.code.name
                    case .failure:
                        outcome = "other"
                    }
                    outcomes.withLock { $0[index] = outcome }
                    done.signal()
                }
            }
        }
        for _ in 0..<count { #expect(done.wait(timeout: .now() + 30) == .success) }
        var expected = Dictionary(uniqueKeysWithValues: (0..<count).map { ($0, "ok") })
        expected[77] = GatehouseError.Code.conflict.name
        #expect(outcomes.withLock { $0 } == expected)
        #expect(committer.statistics.pieces == count - 1, "every piece committed once; the conflicting one never")
        #expect(committer.statistics.transactions < count, "pieces submitted together share transactions")
        // The committer thread ends when idle and a new one starts with the next piece.
        try await Task.sleep(for: .milliseconds(1500))
        #expect(try committer.run { connection in
            try connection.execute("INSERT INTO group_probe (id, n) VALUES ('after', 7)", [])
            return 7
        } == 7)
    }

    @Test(arguments: StoreKind.allCases)
    func anOutageFailsTheWholeBatchAtOnce(kind: StoreKind) async throws {
        let handle = try await probeDatabase(kind)
        defer { Task { await handle.close() } }
        let database = handle.database
        let committer = GroupCommit(database: database)
        let followers = 5
        let outcomes = await followersBehindAHeldBatch(committer, followers: followers) { index, connection in
            try connection.execute(
                "INSERT INTO group_probe (id, n) VALUES (?, ?)", .text("f\(index)"), .int64(Int64(index)))
            // What a deadlock or a lock held elsewhere past the busy timeout looks like.
            if index == 2 { throw GatehouseError(.unavailable, "the database is locked") }
        }
        // Everyone in that batch is told at once (and retries), instead of each waiting for the
        // same outage in a transaction of its own.
        #expect(outcomes == Dictionary(uniqueKeysWithValues: (0..<followers).map {
            ($0, GatehouseError.Code.unavailable.name)
        }))
        #expect(committer.statistics.transactions == 2)
        let rows = try await database.read { connection in
            try connection.query("SELECT id FROM group_probe ORDER BY id").map { try $0.text("id") }
        }
        #expect(rows == ["first"])
    }
}
