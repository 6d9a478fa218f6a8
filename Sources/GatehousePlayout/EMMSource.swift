import GatehouseCore
import GatehouseStore

/// How often an EMM went out since the last write-back, and when last.
public struct EMMSendRecord: Sendable, Equatable {
    public var id: Int64
    public var count: Int64
    public var lastSentAt: Int64
    public init(id: Int64, count: Int64, lastSentAt: Int64) {
        self.id = id
        self.count = count
        self.lastSentAt = lastSentAt
    }
}

/// Where the playout gets its EMMs and records what it sent. `StoreEMMSource` reads the
/// `emms` table; tests and the benchmark use an in-memory source.
public protocol PlayoutEMMSource: Sendable {
    /// Live EMMs (`expires_at > now`) with `id > afterID`, in id order, at most `limit`.
    func emms(after afterID: Int64, now: Int64, limit: Int) async throws -> [CarouselEMM]
    /// The live EMMs among `ids` (any order; missing or expired ones are left out): to pick
    /// up rows committed out of id order.
    func emms(ids: [Int64], now: Int64) async throws -> [CarouselEMM]
    /// Adds the counts to send_count and sets last_sent_at.
    func recordSends(_ records: [EMMSendRecord]) async throws
    /// Ids whose `expires_at` falls in `(since, until]`: EMMs the worker withdrew early
    /// (cancel, merge, key rotation, revocation) show up here, as do natural expiries.
    func withdrawn(since: Int64, until: Int64) async throws -> [Int64]
}

extension PlayoutEMMSource {
    /// Sources without withdrawals (tests, benchmarks) report none.
    public func withdrawn(since: Int64, until: Int64) async throws -> [Int64] { [] }
}

/// The `emms` table of a Gatehouse database (SQLite or MariaDB), read by primary key pages.
///
/// Rows are found by `id > last loaded`. On SQLite ids commit in order (one writer). On
/// MariaDB two worker transactions can commit ids out of order, so the service looks the
/// skipped ids up again for 30 s (`emms(ids:now:)`); see docs/playout.md.
public struct StoreEMMSource: PlayoutEMMSource {
    public let database: any SQLDatabase

    public init(database: any SQLDatabase) { self.database = database }

    public func emms(after afterID: Int64, now: Int64, limit: Int) async throws -> [CarouselEMM] {
        let rows = try await database.read { conn in
            try conn.query(
                "SELECT \(Self.columns) FROM emms WHERE id > ? AND expires_at > ? ORDER BY id LIMIT ?", .int64(afterID),
                .int64(now), .int64(Int64(limit)))
        }
        return try Self.decode(rows)
    }

    static let columns =
        "id, section, first_send_at, repeat_interval_ms, expires_at, urgent, send_count, last_sent_at"
    /// Ids per lookup: one fixed statement (padded with -1), so the statement cache holds one entry.
    static let idsPerLookup = 32

    public func emms(ids: [Int64], now: Int64) async throws -> [CarouselEMM] {
        guard !ids.isEmpty else { return [] }
        let placeholders = Array(repeating: "?", count: Self.idsPerLookup).joined(separator: ", ")
        let sql = "SELECT \(Self.columns) FROM emms WHERE id IN (\(placeholders)) AND expires_at > ? ORDER BY id"
        let rows = try await database.read { conn in
            var all: [SQLRow] = []
            for start in stride(from: 0, to: ids.count, by: Self.idsPerLookup) {
                let chunk = ids[start..<min(ids.count, start + Self.idsPerLookup)]
                var parameters = chunk.map { SQLValue.int64($0) }
                while parameters.count < Self.idsPerLookup { parameters.append(.int64(-1)) }
                parameters.append(.int64(now))
                all += try conn.query(sql, parameters)
            }
            return all
        }
        return try Self.decode(rows)
    }

    static func decode(_ rows: [SQLRow]) throws -> [CarouselEMM] {
        var out: [CarouselEMM] = []
        out.reserveCapacity(rows.count)
        for row in rows {
            out.append(
                CarouselEMM(
                    id: try row.int64("id"), section: try row.blob("section"),
                    firstSendAt: try row.int64("first_send_at"),
                    repeatIntervalMilliseconds: try row.int64("repeat_interval_ms"),
                    expiresAt: try row.int64("expires_at"), isUrgent: try row.int64("urgent") != 0,
                    sendCount: try row.int64("send_count"), lastSentAt: try row.int64OrNil("last_sent_at")))
        }
        return out
    }

    /// Rows updated per transaction: short transactions, so the write-back never holds
    /// SQLite's single write lock long enough to delay the API and the worker.
    static let updatesPerTransaction = 500

    public func withdrawn(since: Int64, until: Int64) async throws -> [Int64] {
        try await database.read { connection in
            try connection.query(
                "SELECT id FROM emms WHERE expires_at > ? AND expires_at <= ?", .int64(since), .int64(until)
            ).map { try $0.int64("id") }
        }
    }

    public func recordSends(_ records: [EMMSendRecord]) async throws {
        for start in stride(from: 0, to: records.count, by: Self.updatesPerTransaction) {
            let chunk = Array(records[start..<min(records.count, start + Self.updatesPerTransaction)])
            try await database.transaction { conn in
                for record in chunk {
                    try conn.execute(
                        "UPDATE emms SET send_count = send_count + ?, last_sent_at = ? WHERE id = ?",
                        .int64(record.count), .int64(record.lastSentAt), .int64(record.id))
                }
            }
        }
    }
}
