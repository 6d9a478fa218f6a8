import CSQLite
import GatehouseCore

/// Turns an SQLite result code into a `GatehouseError`: the one place SQLite errors are mapped.
///
/// The message names the operation and carries SQLite's own text, which names tables and
/// columns but never bound values (keys, tokens), so it is safe to log.
func sqliteError(_ code: Int32, _ db: OpaquePointer?, _ operation: String) -> GatehouseError {
    let detail = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
    let errorCode: GatehouseError.Code
    switch code {
    case GH_SQLITE_CONSTRAINT_UNIQUE, GH_SQLITE_CONSTRAINT_PRIMARYKEY, GH_SQLITE_CONSTRAINT_ROWID:
        errorCode = .conflict
    case _ where code & 0xFF == SQLITE_CONSTRAINT:
        errorCode = .invalidInput
    case _ where code & 0xFF == SQLITE_BUSY || code & 0xFF == SQLITE_LOCKED:
        errorCode = .unavailable
    default:
        errorCode = .database
    }
    return GatehouseError(errorCode, "sqlite: \(operation): \(detail)", nativeCode: Int(code))
}

/// One prepared statement; finalized when the last reference goes.
final class SQLiteStatement {
    let handle: OpaquePointer
    let parameterCount: Int
    /// The result's column names, read once: building them from `sqlite3_column_name` on
    /// every execution was a third of a one-row read. Kept with the re-prepare count they
    /// were read at: SQLite re-prepares a statement after a schema change, and the names
    /// (of `SELECT *`, say) may change with it.
    var columns: (names: SQLColumns, preparedGeneration: Int32)?

    /// How many times SQLite has re-prepared this statement.
    var preparedGeneration: Int32 { sqlite3_stmt_status(handle, SQLITE_STMTSTATUS_REPREPARE, 0) }

    init(handle: OpaquePointer) {
        self.handle = handle
        self.parameterCount = Int(sqlite3_bind_parameter_count(handle))
    }

    deinit { sqlite3_finalize(handle) }
}

/// One SQLite connection (`sqlite3*`) with its prepared-statement cache.
///
/// `@unchecked Sendable`: SQLite in multi-thread mode (`SQLITE_OPEN_NOMUTEX`) documents that
/// a connection may be used from any thread as long as only one thread uses it at a time;
/// the pool guarantees that by lending it to one borrower on one serial queue.
final class SQLiteConnection: TransactionalConnection, PooledConnection, @unchecked Sendable {
    /// How hard a commit in WAL mode tries to reach the disk.
    enum Synchronous: String, Sendable {
        /// WAL is synced at checkpoints only: a committed transaction survives a crash of
        /// the process, a power loss may lose the last ones (the database stays consistent).
        case normal = "NORMAL"
        /// WAL is synced at every commit: survives power loss too, at one fsync per commit.
        case full = "FULL"
    }

    private var handle: OpaquePointer?
    private var cache: [String: SQLiteStatement] = [:]
    private var cacheOrder: [String] = []
    private let cacheCapacity: Int
    private(set) var preparedStatementCount = 0

    var dialect: SQLDialect { .sqlite }

    var isInTransaction: Bool {
        guard let handle else { return false }
        return sqlite3_get_autocommit(handle) == 0
    }

    private init(handle: OpaquePointer, cacheCapacity: Int) {
        self.handle = handle
        self.cacheCapacity = cacheCapacity
    }

    /// Opens `path` (creating the file) and configures the connection.
    /// - Parameter isWriter: the writer switches the file to WAL and enforces foreign keys;
    ///   readers are `query_only` so a stray write on the read path fails loudly.
    /// - Throws: `GatehouseError.database` naming the path when the file cannot be opened or
    ///   is not in WAL mode afterwards.
    static func make(
        path: String, isWriter: Bool, busyTimeoutMilliseconds: Int, synchronous: Synchronous,
        cacheCapacity: Int, isCheckpointer: Bool = false
    ) throws -> SQLiteConnection {
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let error = sqliteError(rc, db, "open \(path)")
            sqlite3_close_v2(db)  // a handle is returned even on failure and must be freed
            throw error
        }
        // From here `connection` owns `db` and closes it in deinit, also when setup throws.
        let connection = SQLiteConnection(handle: db, cacheCapacity: cacheCapacity)
        sqlite3_extended_result_codes(db, 1)
        gh_sqlite3_set_short_busy_wait(db, Int32(clamping: busyTimeoutMilliseconds))
        if isWriter {
            let mode = try connection.query("PRAGMA journal_mode=WAL", []).first?[0]
            let isMemory = path == ":memory:" || path.isEmpty
            if !isMemory, mode != .text("wal") {
                throw GatehouseError(.database, "sqlite: \(path) could not be switched to WAL mode")
            }
            try connection.execute("PRAGMA synchronous=\(synchronous.rawValue)", [])
            // Checkpoints run on a background connection (`SQLiteCheckpointer`), off the
            // commit path; this one only fires if that one falls far behind (~80 MiB of WAL).
            try connection.execute("PRAGMA wal_autocheckpoint=20000", [])
            try connection.execute("PRAGMA foreign_keys=ON", [])
        } else if !isCheckpointer {
            try connection.execute("PRAGMA query_only=ON", [])
        }
        // Statement journals (an INSERT that may hit a unique key inside a larger
        // transaction needs one) and sorts stay in memory: as temporary files they cost
        // an open, an unlink and a close per statement.
        try connection.execute("PRAGMA temp_store=MEMORY", [])
        // PRAGMAs run once: keep them out of the cache and the prepared-statement count.
        connection.cache.removeAll()
        connection.cacheOrder.removeAll()
        connection.preparedStatementCount = 0
        return connection
    }

    func close() {
        cache.removeAll()  // finalize every statement before the connection goes
        cacheOrder.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    deinit { close() }

    private func liveHandle() throws -> OpaquePointer {
        guard let handle else { throw GatehouseError(.unavailable, "sqlite: the connection is closed") }
        return handle
    }

    /// The cached statement for `sql`, prepared on first use. The cache keeps the most
    /// recently added `cacheCapacity` statements (first in, first out).
    private func statement(_ sql: String) throws -> SQLiteStatement {
        if let cached = cache[sql] { return cached }
        let db = try liveHandle()
        var raw: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &raw, nil)
        guard rc == SQLITE_OK, let raw else {
            sqlite3_finalize(raw)
            throw sqliteError(rc, db, "prepare")
        }
        let statement = SQLiteStatement(handle: raw)
        preparedStatementCount += 1
        if cache.count >= cacheCapacity, !cacheOrder.isEmpty {
            cache[cacheOrder.removeFirst()] = nil
        }
        cache[sql] = statement
        cacheOrder.append(sql)
        return statement
    }

    private func bind(_ statement: SQLiteStatement, _ parameters: [SQLValue]) throws {
        let db = try liveHandle()
        guard parameters.count == statement.parameterCount else {
            throw GatehouseError(
                .database, "sqlite: statement expects \(statement.parameterCount) parameters, got \(parameters.count)")
        }
        for (offset, value) in parameters.enumerated() {
            let index = Int32(offset + 1)
            let rc: Int32
            switch value {
            case .null:
                rc = sqlite3_bind_null(statement.handle, index)
            case .int64(let v):
                rc = sqlite3_bind_int64(statement.handle, index, v)
            case .double(let d):
                rc = sqlite3_bind_double(statement.handle, index, d)
            case .text(let s):
                var copy = s
                rc = copy.withUTF8 { bytes in
                    // A NULL pointer would bind SQL NULL: an empty string must stay text.
                    guard let base = bytes.baseAddress, bytes.count > 0 else {
                        return gh_sqlite3_bind_text_copy(statement.handle, index, "", 0)
                    }
                    return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                        gh_sqlite3_bind_text_copy(statement.handle, index, $0, Int32(bytes.count))
                    }
                }
            case .blob(let b):
                // A NULL pointer would bind SQL NULL: an empty blob must stay a blob.
                rc =
                    b.isEmpty
                    ? sqlite3_bind_zeroblob(statement.handle, index, 0)
                    : b.withUnsafeBytes {
                        gh_sqlite3_bind_blob_copy(statement.handle, index, $0.baseAddress, Int32($0.count))
                    }
            }
            guard rc == SQLITE_OK else { throw sqliteError(rc, db, "bind parameter \(index)") }
        }
    }

    /// Binds, steps to the end, resets. `onRow` sees each row while the statement is on it.
    private func run(_ statement: SQLiteStatement, _ parameters: [SQLValue], onRow: (OpaquePointer) -> Void) throws {
        let db = try liveHandle()
        defer {
            sqlite3_reset(statement.handle)
            sqlite3_clear_bindings(statement.handle)
        }
        try bind(statement, parameters)
        while true {
            let rc = sqlite3_step(statement.handle)
            switch rc {
            case SQLITE_ROW: onRow(statement.handle)
            case SQLITE_DONE: return
            default: throw sqliteError(sqlite3_extended_errcode(db), db, "step")
            }
        }
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> SQLExecResult {
        try run(try statement(sql), parameters) { _ in }
        let db = try liveHandle()
        return SQLExecResult(affectedRows: Int(sqlite3_changes64(db)), lastInsertID: sqlite3_last_insert_rowid(db))
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow] {
        var rows: [SQLRow] = []
        let statement = try statement(sql)
        var columns: SQLColumns?
        try run(statement, parameters) { stmt in
            let count = Int(sqlite3_column_count(stmt))
            if columns == nil {
                let generation = statement.preparedGeneration
                if let known = statement.columns, known.preparedGeneration == generation, known.names.count == count {
                    columns = known.names
                } else {
                    let names = SQLColumns((0..<count).map { String(cString: sqlite3_column_name(stmt, Int32($0))) })
                    statement.columns = (names, generation)
                    columns = names
                }
            }
            var values: [SQLValue] = []
            values.reserveCapacity(count)
            for i in 0..<Int32(count) { values.append(Self.column(stmt, i)) }
            rows.append(SQLRow(columns: columns!, values: values))
        }
        return rows
    }

    private static func column(_ stmt: OpaquePointer, _ i: Int32) -> SQLValue {
        switch sqlite3_column_type(stmt, i) {
        case SQLITE_INTEGER:
            return .int64(sqlite3_column_int64(stmt, i))
        case SQLITE_FLOAT:
            return .double(sqlite3_column_double(stmt, i))
        case SQLITE_TEXT:
            // Pointer first, then the byte count, as the SQLite documentation asks.
            guard let text = sqlite3_column_text(stmt, i) else { return .text("") }
            let count = Int(sqlite3_column_bytes(stmt, i))
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            guard let bytes = sqlite3_column_blob(stmt, i) else { return .blob([]) }
            let count = Int(sqlite3_column_bytes(stmt, i))
            return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
        default:
            return .null
        }
    }

    func begin(_ mode: TransactionMode) throws {
        // IMMEDIATE takes the write lock now (waiting up to the busy timeout) instead of
        // failing with SQLITE_BUSY when a deferred transaction tries to upgrade later.
        try execute(mode == .write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED", [])
    }

    func commit() throws { try execute("COMMIT", []) }

    func rollback() {
        // SQLite may already have rolled back (e.g. after SQLITE_FULL); only roll back
        // what is still open.
        if isInTransaction { _ = try? execute("ROLLBACK", []) }
    }
}
