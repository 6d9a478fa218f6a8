import Foundation
import GatehouseCore
import Synchronization
import GatehouseStore
import GatehouseTestSupport
import Testing

/// The blocking entry points (used from libmicrohttpd's threads) share the pool with the
/// async ones: many threads and tasks at once, every write lands exactly once.
@Suite("Blocking store access", .serialized)
struct BlockingAccessTests {
    @Test(arguments: StoreKind.allCases)
    func threadsAndTasksShareThePool(kind: StoreKind) async throws {
        let handle = try await TestDatabases.make(kind)
        defer { Task { await handle.close() } }
        let database = handle.database
        try await database.withConnection { try $0.execute("CREATE TABLE blocking_probe (id VARCHAR(32) PRIMARY KEY, n INTEGER)", []) }
        let threads = 12, perThread = 40
        let failures = Mutex<[String]>([])
        // Threads blocking in the pool, and async borrowers at the same time.
        async let threadsDone: Void = onThreads(threads) { t in
            for i in 0..<perThread {
                do {
                    try database.transactionBlocking { connection in
                        try connection.execute("INSERT INTO blocking_probe (id, n) VALUES (?, ?)", .text("t\(t)-\(i)"), .int64(Int64(i)))
                    }
                    _ = try database.readBlocking { try $0.queryFirst("SELECT n FROM blocking_probe WHERE id = ?", .text("t\(t)-\(i)")) }
                } catch {
                    failures.withLock { $0.append(String(describing: error)) }
                }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            for a in 0..<4 {
                tasks.addTask {
                    for i in 0..<perThread {
                        try await database.transaction { connection in
                            try connection.execute("INSERT INTO blocking_probe (id, n) VALUES (?, ?)", .text("a\(a)-\(i)"), .int64(Int64(i)))
                        }
                    }
                }
            }
            try await tasks.waitForAll()
        }
        await threadsDone
        #expect(failures.withLock { $0 }.isEmpty)
        let count = try await database.read { try $0.queryFirst("SELECT COUNT(*) AS n FROM blocking_probe")!.int("n") }
        #expect(count == (threads + 4) * perThread)
        // A failing blocking transaction rolls back and throws.
        #expect(throws: GatehouseError.self) {
            try database.transactionBlocking { connection in
                try connection.execute("INSERT INTO blocking_probe (id, n) VALUES ('x', 1)", [])
                try connection.execute("INSERT INTO blocking_probe (id, n) VALUES ('x', 2)", [])
            }
        }
        #expect(try database.readBlocking { try $0.queryFirst("SELECT n FROM blocking_probe WHERE id = 'x'") } == nil)
    }
}
