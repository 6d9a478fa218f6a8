import CMariaDB
import Foundation
import GatehouseCore

/// `mysql_library_init` once per process, before the first `mysql_init`: Connector/C's
/// implicit initialisation inside `mysql_init` is not safe when two threads race to it.
private let mariaDBLibraryReady: Bool = mysql_server_init(0, nil, nil) == 0

/// Server and client error numbers that mean the connection is gone: the server went
/// away (2006), was lost mid-command (2013), killed us (1927 ER_CONNECTION_KILLED), or
/// timed us out (4031 ER_CLIENT_INTERACTION_TIMEOUT); 2055 is a lost connection at handshake.
private let lostConnectionErrors: Set<Int> = [2006, 2013, 2055, 1927, 4031]

/// Turns a MariaDB error number and text into a `GatehouseError`: the one place MariaDB
/// errors are mapped.
///
/// Connector/C messages never contain the password. ER_DUP_ENTRY's text quotes the
/// duplicate value (which may be a token hash or an idempotency key), so only the key
/// name is kept.
func mariaDBError(_ number: UInt32, _ text: String, _ operation: String) -> GatehouseError {
    let code = Int(number)
    switch code {
    case 1062, 1586:  // ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
        let key = text.range(of: " for key ").map { String(text[$0.upperBound...]) } ?? "a unique key"
        return GatehouseError(.conflict, "mariadb: \(operation): duplicate entry for key \(key)", nativeCode: code)
    case 1451, 1452, 4025, 1048, 1406, 1264, 1366, 3819:
        // foreign key (parent/child), CHECK, NOT NULL, too long, out of range, bad value
        return GatehouseError(.invalidInput, "mariadb: \(operation): \(text)", nativeCode: code)
    case 1205, 1213:  // lock wait timeout, deadlock: the transaction may be retried
        return GatehouseError(.unavailable, "mariadb: \(operation): \(text)", nativeCode: code)
    case 1040, 1203, 1053, 1290, 1792, 1836, 1969:
        // Too many connections (server-wide, per user), shutting down, read-only (the
        // --read-only option, a read-only transaction, read-only mode: a failover under
        // way), statement timeout: the server's state, not the statement's; retry later.
        return GatehouseError(.unavailable, "mariadb: \(operation): \(text)", nativeCode: code)
    case 1044, 1045, 1049, 1698:  // no access to database, bad password, unknown database
        return GatehouseError(.configuration, "mariadb: \(operation): \(text)", nativeCode: code)
    case 2002, 2003, 2005:  // cannot reach the server
        return GatehouseError(.unavailable, "mariadb: \(operation): \(text)", nativeCode: code)
    case _ where lostConnectionErrors.contains(code):
        return GatehouseError(.unavailable, "mariadb: \(operation): \(text)", nativeCode: code)
    default:
        return GatehouseError(.database, "mariadb: \(operation): \(text)", nativeCode: code)
    }
}

private func isLostConnection(_ error: GatehouseError) -> Bool {
    error.code == .unavailable && error.nativeCode.map { lostConnectionErrors.contains($0) } == true
}

/// Memory for an array of `MYSQL_BIND` and the buffers they point to, freed together.
/// Connector/C keeps the pointers between bind and execute/fetch, so this object must
/// outlive those calls.
private final class MariaDBBindings {
    let count: Int
    let binds: UnsafeMutablePointer<MYSQL_BIND>
    let lengths: UnsafeMutablePointer<UInt>
    let isNull: UnsafeMutablePointer<my_bool>
    let errors: UnsafeMutablePointer<my_bool>
    var buffers: [UnsafeMutableRawPointer?]

    init(count: Int) {
        self.count = count
        let n = max(count, 1)
        binds = .allocate(capacity: n)
        binds.initialize(repeating: MYSQL_BIND(), count: n)
        lengths = .allocate(capacity: n)
        lengths.initialize(repeating: 0, count: n)
        isNull = .allocate(capacity: n)
        isNull.initialize(repeating: 0, count: n)
        errors = .allocate(capacity: n)
        errors.initialize(repeating: 0, count: n)
        buffers = Array(repeating: nil, count: n)
        for i in 0..<count {
            binds[i].length = lengths + i
            binds[i].is_null = isNull + i
            binds[i].error = errors + i
        }
    }

    /// Points bind `i` at a new buffer of `size` bytes (at least one, so it is never NULL).
    @discardableResult
    func allocate(_ i: Int, size: Int) -> UnsafeMutableRawPointer {
        buffers[i]?.deallocate()
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(size, 1), alignment: 8)
        buffers[i] = buffer
        binds[i].buffer = buffer
        binds[i].buffer_length = UInt(size)
        return buffer
    }

    deinit {
        for buffer in buffers { buffer?.deallocate() }
        binds.deallocate()
        lengths.deallocate()
        isNull.deallocate()
        errors.deallocate()
    }
}

/// One server-side prepared statement (`MYSQL_STMT*`); closed when the last reference goes.
final class MariaDBStatement {
    let handle: UnsafeMutablePointer<MYSQL_STMT>

    init(handle: UnsafeMutablePointer<MYSQL_STMT>) { self.handle = handle }

    /// Valid after a successful prepare.
    var parameterCount: Int { Int(mysql_stmt_param_count(handle)) }

    deinit { mysql_stmt_close(handle) }

    func error(_ operation: String) -> GatehouseError {
        if mysql_stmt_errno(handle) == 0, let connection = handle.pointee.mysql, mysql_errno(connection) != 0 {
            // An error the server sends while rows stream in (a statement timeout, a kill)
            // is recorded on the connection, not on the statement.
            return mariaDBError(mysql_errno(connection), String(cString: mysql_error(connection)), operation)
        }
        let text = String(cString: mysql_stmt_error(handle))
        return mariaDBError(mysql_stmt_errno(handle), text.isEmpty ? "unknown error" : text, operation)
    }
}

/// One MariaDB connection (`MYSQL*`) with its prepared-statement cache, reconnecting on
/// demand.
///
/// `@unchecked Sendable`: Connector/C documents that a `MYSQL` handle may be used from any
/// thread but by one thread at a time; the pool lends it to one borrower on one serial queue.
final class MariaDBConnection: TransactionalConnection, PooledConnection, @unchecked Sendable {
    private let configuration: MariaDBConfiguration
    private let logger: Logger
    /// `nil` while disconnected: the next statement outside a transaction reconnects.
    private var mysql: UnsafeMutablePointer<MYSQL>?
    private var cache: [String: MariaDBStatement] = [:]
    private var cacheOrder: [String] = []
    private(set) var preparedStatementCount = 0
    private(set) var isInTransaction = false
    /// Connections made (1 after `make`); a test reads it to see a reconnect happen.
    private(set) var connectCount = 0

    var dialect: SQLDialect { .mariadb }

    private init(configuration: MariaDBConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Connects now, so a wrong URL or password fails at start-up rather than on first use.
    static func make(configuration: MariaDBConfiguration, logger: Logger) throws -> MariaDBConnection {
        let connection = MariaDBConnection(configuration: configuration, logger: logger)
        try connection.connect()
        return connection
    }

    /// The server's thread id for this connection (`CONNECTION_ID()`), 0 when disconnected.
    var serverThreadID: UInt {
        guard let mysql else { return 0 }
        return mysql_thread_id(mysql)
    }

    private func connect() throws {
        guard mariaDBLibraryReady else { throw GatehouseError(.database, "mariadb: mysql_library_init failed") }
        guard let handle = mysql_init(nil) else {
            throw GatehouseError(.database, "mariadb: out of memory (mysql_init)")
        }
        let config = configuration
        var connectTimeout = UInt32(config.connectTimeoutSeconds)
        var ioTimeout = UInt32(config.ioTimeoutSeconds)
        // No automatic reconnect: it would silently drop prepared statements and session
        // state; this class reconnects itself, only where that is safe.
        var reconnect: my_bool = 0
        mysql_options(handle, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        mysql_options(handle, MYSQL_OPT_CONNECT_TIMEOUT, &connectTimeout)
        mysql_options(handle, MYSQL_OPT_READ_TIMEOUT, &ioTimeout)
        mysql_options(handle, MYSQL_OPT_WRITE_TIMEOUT, &ioTimeout)
        mysql_options(handle, MYSQL_OPT_RECONNECT, &reconnect)
        // Strict mode on every connection, whatever the server default: a value that does not
        // fit is an error, as on SQLite with CHECK constraints, never a silent truncation.
        mysql_options(
            handle, MYSQL_INIT_COMMAND,
            "SET SESSION sql_mode='STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
                + "NO_ENGINE_SUBSTITUTION', time_zone='+00:00'")
        // CLIENT_FOUND_ROWS: UPDATE reports matched rows, as SQLite's changes() does.
        let flags = UInt(CLIENT_FOUND_ROWS)
        let host = config.unixSocket == nil ? config.host : "localhost"
        let result = mysql_real_connect(
            handle, host, config.user, config.password, config.database, UInt32(config.port), config.unixSocket, flags)
        guard result != nil else {
            let error = mariaDBError(
                mysql_errno(handle), String(cString: mysql_error(handle)), "connect to \(config.redactedURL)")
            mysql_close(handle)
            throw error
        }
        mysql = handle
        connectCount += 1
    }

    /// Whether the idle connection's socket has something to read or has hung up: with no
    /// command in flight, that can only be the server closing it.
    private func isClosedByServer() -> Bool {
        guard let mysql else { return false }
        let fd = mysql_get_socket(mysql)
        guard fd >= 0 else { return true }
        var entry = pollfd(fd: Int32(fd), events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) != 0
    }

    /// Drops the statements and the handle; the next statement outside a transaction reconnects.
    private func disconnect() {
        cache.removeAll()  // mysql_stmt_close before mysql_close
        cacheOrder.removeAll()
        if let mysql { mysql_close(mysql) }
        mysql = nil
    }

    func close() {
        disconnect()
        isInTransaction = false
    }

    deinit { close() }

    private func connectionError(_ operation: String) -> GatehouseError {
        guard let mysql else { return GatehouseError(.unavailable, "mariadb: \(operation): not connected") }
        return mariaDBError(mysql_errno(mysql), String(cString: mysql_error(mysql)), operation)
    }

    private func statement(_ sql: String) throws -> MariaDBStatement {
        if let cached = cache[sql] { return cached }
        guard let mysql else { throw GatehouseError(.unavailable, "mariadb: not connected") }
        guard let handle = mysql_stmt_init(mysql) else { throw connectionError("mysql_stmt_init") }
        // From here `statement` owns the handle and closes it, also when prepare fails.
        let statement = MariaDBStatement(handle: handle)
        let rc = sql.utf8CString.withUnsafeBufferPointer { text in
            mysql_stmt_prepare(handle, text.baseAddress, UInt(text.count - 1))
        }
        guard rc == 0 else { throw statement.error("prepare") }
        preparedStatementCount += 1
        if cache.count >= configuration.statementCacheCapacity, !cacheOrder.isEmpty {
            cache[cacheOrder.removeFirst()] = nil
        }
        cache[sql] = statement
        cacheOrder.append(sql)
        return statement
    }

    /// Runs `sql` once; outside a transaction, a lost connection is reconnected and the
    /// statement run once more.
    ///
    /// Before running anything outside a transaction, an idle connection whose socket is
    /// readable (the server closed it, or sent a "killed" notice) is replaced at no
    /// round-trip cost. Retrying is then safe when the server dropped the connection before
    /// the command arrived (2006, the notices 1927 and 4031, or any loss while preparing).
    /// After 2013 during execution an autocommit write may or may not have happened, so only
    /// reads are retried; writes throw `.unavailable` and the caller's idempotency decides.
    private func withRetry<T>(isRead: Bool, _ operation: () throws -> T) throws -> T {
        var attempt = 0
        while true {
            do {
                if !isInTransaction, isClosedByServer() {
                    logger.notice(
                        "mariadb connection closed by the server while idle", ["db.url": configuration.redactedURL])
                    disconnect()
                }
                if mysql == nil {
                    guard !isInTransaction else {
                        throw GatehouseError(.unavailable, "mariadb: connection lost inside a transaction")
                    }
                    try connect()
                    logger.notice("mariadb reconnected", ["db.url": configuration.redactedURL])
                }
                return try operation()
            } catch let error as GatehouseError where isLostConnection(error) {
                disconnect()
                let isSafe = isRead || error.nativeCode != 2013 || error.message.hasPrefix("mariadb: prepare")
                guard !isInTransaction, attempt == 0, isSafe else { throw error }
                attempt += 1
                logger.warning(
                    "mariadb connection lost, reconnecting",
                    ["db.url": configuration.redactedURL, "db.error": String(error.nativeCode ?? 0)])
            }
        }
    }

    /// Binds `parameters` to `statement` and executes it.
    private func execute(_ statement: MariaDBStatement, _ parameters: [SQLValue]) throws {
        guard parameters.count == statement.parameterCount else {
            throw GatehouseError(
                .database, "mariadb: statement expects \(statement.parameterCount) parameters, got \(parameters.count)")
        }
        let bindings = MariaDBBindings(count: parameters.count)
        for (i, value) in parameters.enumerated() {
            switch value {
            case .null:
                bindings.binds[i].buffer_type = MYSQL_TYPE_NULL
            case .int64(let v):
                bindings.allocate(i, size: 8).storeBytes(of: v, as: Int64.self)
                bindings.binds[i].buffer_type = MYSQL_TYPE_LONGLONG
            case .double(let d):
                bindings.allocate(i, size: 8).storeBytes(of: d, as: Double.self)
                bindings.binds[i].buffer_type = MYSQL_TYPE_DOUBLE
            case .text(let text):
                let bytes = Array(text.utf8)
                let buffer = bindings.allocate(i, size: bytes.count)
                bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                bindings.lengths[i] = UInt(bytes.count)
                bindings.binds[i].buffer_type = MYSQL_TYPE_STRING
            case .blob(let bytes):
                let buffer = bindings.allocate(i, size: bytes.count)
                if !bytes.isEmpty {
                    bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                }
                bindings.lengths[i] = UInt(bytes.count)
                bindings.binds[i].buffer_type = MYSQL_TYPE_BLOB
            }
        }
        try withExtendedLifetime(bindings) {
            if !parameters.isEmpty, mysql_stmt_bind_param(statement.handle, bindings.binds) != 0 {
                throw statement.error("bind")
            }
            guard mysql_stmt_execute(statement.handle) == 0 else { throw statement.error("execute") }
        }
    }

    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> SQLExecResult {
        try withRetry(isRead: false) {
            let statement = try statement(sql)
            try execute(statement, parameters)
            // A statement that unexpectedly returns rows must still be drained before the next one.
            if let meta = mysql_stmt_result_metadata(statement.handle) {
                mysql_free_result(meta)
                mysql_stmt_free_result(statement.handle)
                _ = mysql_stmt_reset(statement.handle)
            }
            let affected = mysql_stmt_affected_rows(statement.handle)
            return SQLExecResult(
                affectedRows: affected == UInt64.max ? 0 : Int(affected),
                lastInsertID: Int64(truncatingIfNeeded: mysql_stmt_insert_id(statement.handle)))
        }
    }

    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow] {
        try withRetry(isRead: true) {
            let statement = try statement(sql)
            try execute(statement, parameters)
            guard let meta = mysql_stmt_result_metadata(statement.handle) else { return [] }
            defer {
                mysql_free_result(meta)
                mysql_stmt_free_result(statement.handle)
            }
            return try fetchAll(statement, meta)
        }
    }

    /// How a result column is bound and what Swift value it becomes.
    private enum ColumnKind {
        case integer
        case double
        case text
        case blob
    }

    private func fetchAll(_ statement: MariaDBStatement, _ meta: UnsafeMutablePointer<MYSQL_RES>) throws -> [SQLRow] {
        let count = Int(mysql_num_fields(meta))
        guard let fields = mysql_fetch_fields(meta) else { throw statement.error("result metadata") }
        var names: [String] = []
        var kinds: [ColumnKind] = []
        let bindings = MariaDBBindings(count: count)
        for i in 0..<count {
            let field = fields[i]
            names.append(String(cString: field.name))
            let kind: ColumnKind
            switch field.type {
            case MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_INT24, MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG,
                MYSQL_TYPE_YEAR:
                kind = .integer
            case MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE:
                kind = .double
            case MYSQL_TYPE_STRING, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_VARCHAR, MYSQL_TYPE_BLOB, MYSQL_TYPE_TINY_BLOB,
                MYSQL_TYPE_MEDIUM_BLOB, MYSQL_TYPE_LONG_BLOB, MYSQL_TYPE_BIT, MYSQL_TYPE_GEOMETRY:
                // Character set 63 is "binary": BLOB/VARBINARY, read as bytes.
                kind = field.charsetnr == 63 ? .blob : .text
            default:
                // DECIMAL, dates and times: their text form (the schema stores none of these).
                kind = .text
            }
            kinds.append(kind)
            switch kind {
            case .integer:
                bindings.allocate(i, size: 8)
                bindings.binds[i].buffer_type = MYSQL_TYPE_LONGLONG
            case .double:
                bindings.allocate(i, size: 8)
                bindings.binds[i].buffer_type = MYSQL_TYPE_DOUBLE
            case .text, .blob:
                // Most values fit; longer ones are fetched again at full length below.
                bindings.allocate(i, size: Int(min(max(field.length, 16), 512)))
                bindings.binds[i].buffer_type = kind == .blob ? MYSQL_TYPE_BLOB : MYSQL_TYPE_STRING
            }
        }
        let columns = SQLColumns(names)
        return try withExtendedLifetime(bindings) {
            guard mysql_stmt_bind_result(statement.handle, bindings.binds) == 0 else {
                throw statement.error("bind result")
            }
            var rows: [SQLRow] = []
            while true {
                let rc = mysql_stmt_fetch(statement.handle)
                if rc == MYSQL_NO_DATA { break }
                guard rc == 0 || rc == MYSQL_DATA_TRUNCATED else { throw statement.error("fetch") }
                var values: [SQLValue] = []
                values.reserveCapacity(count)
                for i in 0..<count {
                    if bindings.isNull[i] != 0 {
                        values.append(.null)
                        continue
                    }
                    switch kinds[i] {
                    case .integer:
                        values.append(.int64(bindings.buffers[i]!.load(as: Int64.self)))
                    case .double:
                        values.append(.double(bindings.buffers[i]!.load(as: Double.self)))
                    case .text, .blob:
                        let length = Int(bindings.lengths[i])
                        var bytes: [UInt8]
                        if length > Int(bindings.binds[i].buffer_length) {
                            bytes = try fetchColumn(statement, i, length: length, type: bindings.binds[i].buffer_type)
                        } else {
                            bytes = Array(UnsafeRawBufferPointer(start: bindings.buffers[i], count: length))
                        }
                        values.append(kinds[i] == .blob ? .blob(bytes) : .text(String(decoding: bytes, as: UTF8.self)))
                    }
                }
                rows.append(SQLRow(columns: columns, values: values))
            }
            return rows
        }
    }

    /// Reads a column whose value did not fit the first buffer, at its full length.
    private func fetchColumn(_ statement: MariaDBStatement, _ column: Int, length: Int, type: enum_field_types)
        throws -> [UInt8]
    {
        var bytes = [UInt8](repeating: 0, count: length)
        var actual: UInt = 0
        let rc = bytes.withUnsafeMutableBytes { buffer -> Int32 in
            var bind = MYSQL_BIND()
            bind.buffer = buffer.baseAddress
            bind.buffer_length = UInt(length)
            bind.buffer_type = type
            return withUnsafeMutablePointer(to: &actual) { actualPointer in
                bind.length = actualPointer
                return mysql_stmt_fetch_column(statement.handle, &bind, UInt32(column), 0)
            }
        }
        guard rc == 0 else { throw statement.error("fetch column") }
        return Array(bytes.prefix(Int(actual)))
    }

    func begin(_ mode: TransactionMode) throws {
        try withRetry(isRead: true) {
            guard let mysql else { throw GatehouseError(.unavailable, "mariadb: not connected") }
            let sql = mode == .write ? "START TRANSACTION" : "START TRANSACTION READ ONLY"
            guard mysql_real_query(mysql, sql, UInt(sql.utf8.count)) == 0 else { throw connectionError("begin") }
        }
        isInTransaction = true
    }

    func commit() throws {
        defer { isInTransaction = false }
        guard let mysql else { throw GatehouseError(.unavailable, "mariadb: connection lost inside a transaction") }
        if mysql_commit(mysql) != 0 {
            let error = connectionError("commit")
            if isLostConnection(error) { disconnect() }
            throw error
        }
    }

    func rollback() {
        defer { isInTransaction = false }
        guard let mysql else { return }  // lost: the server rolled back already
        if mysql_rollback(mysql) != 0 {
            let error = connectionError("rollback")
            logger.warning("mariadb rollback failed, dropping the connection", ["db.error": error.description])
            disconnect()
        }
    }
}
