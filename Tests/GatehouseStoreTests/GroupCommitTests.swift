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

    /// The ids stored in `group_probe`, sorted.
    private func storedIDs(_ database: any SQLDatabase) async throws -> [String] {
        try await database.read { connection in
            try connection.query("SELECT id FROM group_probe ORDER BY id").map { try $0.text("id") }
        }
    }

    /// Stores one probe row.
    private static func insert(_ id: String, _ n: Int, _ connection: any SQLConnection) throws {
        try connection.execute("INSERT INTO group_probe (id, n) VALUES (?, ?)", .text(id), .int64(Int64(n)))
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
        #expect(await eventually(10) { committer.statistics.transactions == 1 })
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
        #expect(await eventually(10) { committer.waiting == followers })
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
        #expect(await eventually(10) { committer.statistics.transactions == 1 })
        async let others: Void = onThreads(followers) { index in
            let value = try? committer.run { connection -> Int64 in
                try Self.insert("f\(index)", index, connection)
                return try connection.queryFirst("SELECT n FROM group_probe WHERE id = ?", .text("f\(index)"))!
                    .int64("n")
            }
            results.withLock { $0[index] = value }
        }
        #expect(await eventually(10) { committer.waiting == followers })
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
            try Self.insert(index == 3 ? "taken" : "f\(index)", index, connection)
        }

        var expected = Dictionary(uniqueKeysWithValues: (0..<followers).map { ($0, "ok") })
        expected[3] = GatehouseError.Code.conflict.name
        #expect(outcomes == expected)
        let rows = try await storedIDs(database)
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
                    try Self.insert(index == 77 ? "taken" : "s\(index)", index, connection)
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
    func theLoserOfAKeyRaceLearnsOnlyAfterTheWinnerCommitted(kind: StoreKind) async throws {
        let handle = try await probeDatabase(kind)
        defer { Task { await handle.close() } }
        let database = handle.database
        let committer = GroupCommit(database: database)
        let release = DispatchSemaphore(value: 0)
        async let first: Void = onThreads(1) { _ in
            try? committer.run { connection in
                try connection.execute("INSERT INTO group_probe (id, n) VALUES ('first', 0)", [])
                release.wait()
            }
        }
        #expect(await eventually(10) { committer.statistics.transactions == 1 })
        // Two callers with the same key (two requests with one Idempotency-Key) in one batch,
        // among others. Each completion looks, as the API does, for the row it collided with.
        let outcomes = Mutex<[Int: String]>([:])
        let done = DispatchSemaphore(value: 0)
        let followers = 5
        for index in 0..<followers {
            committer.submit({ connection in
                try Self.insert(index < 2 ? "same-key" : "f\(index)", index, connection)
            }) { result in
                let outcome: String
                switch result {
                case .success:
                    outcome = "ok"
                case .failure(let error as GatehouseError) where error.code == .conflict:
                    let winner = try? database.readBlocking {
                        try $0.queryFirst("SELECT n FROM group_probe WHERE id = 'same-key'")?.int64("n")
                    }
                    outcome = winner == nil ? "conflict, winner not visible" : "conflict, winner visible"
                case .failure:
                    outcome = "other"
                }
                outcomes.withLock { $0[index] = outcome }
                done.signal()
            }
        }
        #expect(await eventually(10) { committer.waiting == followers })
        release.signal()
        for _ in 0..<followers { #expect(done.wait(timeout: .now() + 30) == .success) }
        await first
        let all = outcomes.withLock { $0 }
        #expect(all[2] == "ok" && all[3] == "ok" && all[4] == "ok")
        #expect([all[0], all[1]].sorted { ($0 ?? "") < ($1 ?? "") } == ["conflict, winner visible", "ok"])
        #expect(committer.statistics.pieces == followers)  // the first and four followers
    }

    @Test(arguments: StoreKind.allCases)
    func aPieceDatabaseErrorIsItsOwnOnceAndASecondFailsTheBatch(kind: StoreKind) async throws {
        let handle = try await probeDatabase(kind)
        defer { Task { await handle.close() } }
        let database = handle.database
        // One piece fails with a store error of its own (a row too large, say): only it fails.
        let committer = GroupCommit(database: database)
        let followers = 5
        let once = await followersBehindAHeldBatch(committer, followers: followers) { index, connection in
            try Self.insert("a\(index)", index, connection)
            if index == 2 { throw GatehouseError(.database, "row size too large") }
        }
        var expected = Dictionary(uniqueKeysWithValues: (0..<followers).map { ($0, "ok") })
        expected[2] = GatehouseError.Code.database.name
        #expect(once == expected)
        #expect(committer.statistics.transactions == 3)

        let rows = try await storedIDs(database)
        #expect(rows == ["a0", "a1", "a3", "a4", "first"])

        // Two in one batch: the store itself is failing (a full disk), and the rest fail at once.
        let failing = try await probeDatabase(kind)
        defer { Task { await failing.close() } }
        let twice = await followersBehindAHeldBatch(GroupCommit(database: failing.database), followers: followers) {
            index, connection in
            try Self.insert("b\(index)", index, connection)
            if index == 1 || index == 3 { throw GatehouseError(.database, "disk full") }
        }
        #expect(twice == Dictionary(uniqueKeysWithValues: (0..<followers).map { ($0, GatehouseError.Code.database.name) }))
        let left = try await storedIDs(failing.database)
        #expect(left == ["first"])
    }

    @Test(arguments: StoreKind.allCases)
    func anOutageFailsTheWholeBatchAtOnce(kind: StoreKind) async throws {
        let handle = try await probeDatabase(kind)
        defer { Task { await handle.close() } }
        let database = handle.database
        let committer = GroupCommit(database: database)
        let followers = 5
        let outcomes = await followersBehindAHeldBatch(committer, followers: followers) { index, connection in
            try Self.insert("f\(index)", index, connection)
            // What a deadlock or a lock held elsewhere past the busy timeout looks like.
            if index == 2 { throw GatehouseError(.unavailable, "the database is locked") }
        }
        // Everyone in that batch is told at once (and retries), instead of each waiting for the
        // same outage in a transaction of its own.
        #expect(outcomes == Dictionary(uniqueKeysWithValues: (0..<followers).map {
            ($0, GatehouseError.Code.unavailable.name)
        }))
        #expect(committer.statistics.transactions == 2)
        let rows = try await storedIDs(database)
        #expect(rows == ["first"])
    }
}
