import Foundation
import GatehouseCore
import Testing

@testable import GatehouseStore

/// The WAL is copied into the database file by the background checkpointer, not by the
/// commits: with it, the main file grows while the writer's own threshold is far away;
/// without it (the negative control), the main file stays as it was.
@Suite("SQLite background checkpoints")
struct CheckpointerTests {
    private func fileSize(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    private func writeTwoMegabytes(_ db: SQLiteDatabase) async throws {
        try await db.withConnection { try $0.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, pad BLOB)", []) }
        for batch in 0..<20 {
            try await db.transaction { connection in
                for row in 0..<100 {
                    try connection.execute(
                        "INSERT INTO probe (id, pad) VALUES (?, ?)", .int64(Int64(batch * 100 + row)),
                        .blob([UInt8](repeating: UInt8(row), count: 1024)))
                }
            }
        }
    }

    @Test(arguments: [true, false])
    func walReachesTheDatabaseFileInTheBackground(checkpointing: Bool) async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gh-ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("test.sqlite").path
        var configuration = SQLiteDatabase.Configuration(path: path)
        configuration.checkpointInterval = checkpointing ? .milliseconds(20) : nil
        let db = try await SQLiteDatabase.open(configuration, logger: StoreTestEnvironment.logger())
        try await writeTwoMegabytes(db)
        if !checkpointing {
            // With checkpoints running the WAL wraps around to its start, so only the control
            // case shows every row still in it.
            #expect(fileSize(path + "-wal") > 2_000_000, "the rows are in the WAL")
        }
        var size = fileSize(path)
        for _ in 0..<300 where checkpointing && size < 2_000_000 {
            try await Task.sleep(for: .milliseconds(10))
            size = fileSize(path)
        }
        if checkpointing {
            #expect(size > 2_000_000, "the checkpointer copied the WAL into the file")
        } else {
            try await Task.sleep(for: .milliseconds(200))
            #expect(fileSize(path) < 100_000, "no checkpoint before the writer's threshold")
        }
        let count = try await db.read { try $0.queryFirst("SELECT COUNT(*) AS n FROM probe")!.int("n") }
        #expect(count == 2000)
        await db.close()
    }
}
