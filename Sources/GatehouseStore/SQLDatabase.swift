import GatehouseCore

/// Which SQL dialect a database speaks, for the few statements that must differ
/// (upserts, `FOR UPDATE`); everything else is written once with `?` placeholders.
public enum SQLDialect: String, Sendable {
    case sqlite
    case mariadb
}

/// A database connection lent to a closure by `SQLDatabase`.
///
/// Every statement is a prepared statement with `?` placeholders, kept in a per-connection
/// cache keyed by its SQL text, so write the SQL as a constant and pass values as
/// parameters.
///
/// - Important: a connection is not `Sendable` and must not escape the closure it was lent
///   to: it belongs to the pool, and the next borrower may be on another thread.
public protocol SQLConnection: AnyObject {
    var dialect: SQLDialect { get }

    /// Runs a statement that returns no rows (INSERT, UPDATE, DELETE, DDL).
    /// - Throws: `GatehouseError` with `.conflict` for a unique or primary-key violation,
    ///   `.invalidInput` for another constraint (foreign key, CHECK, NOT NULL, too long),
    ///   `.unavailable` when the server is gone or the database is locked, `.database` otherwise.
    @discardableResult
    func execute(_ sql: String, _ parameters: [SQLValue]) throws -> SQLExecResult

    /// Runs a statement and returns all its rows (results are read whole: page with LIMIT).
    /// - Throws: the same codes as `execute`.
    func query(_ sql: String, _ parameters: [SQLValue]) throws -> [SQLRow]

    /// How many statements this connection has prepared since it opened (cache hits do not
    /// count; a MariaDB reconnect prepares again). For tests and metrics.
    var preparedStatementCount: Int { get }

    /// Whether a transaction is open on this connection.
    var isInTransaction: Bool { get }
}

extension SQLConnection {
    @discardableResult
    public func execute(_ sql: String, _ parameters: SQLValue...) throws -> SQLExecResult {
        try execute(sql, parameters)
    }

    public func query(_ sql: String, _ parameters: SQLValue...) throws -> [SQLRow] {
        try query(sql, parameters)
    }

    /// The first row, or `nil` when there is none.
    public func queryFirst(_ sql: String, _ parameters: [SQLValue]) throws -> SQLRow? {
        try query(sql, parameters).first
    }

    public func queryFirst(_ sql: String, _ parameters: SQLValue...) throws -> SQLRow? {
        try query(sql, parameters).first
    }
}

/// A pool of connections to one database: the one protocol the services store through,
/// implemented by `SQLiteDatabase` (embedded) and `MariaDBDatabase` (distributed).
///
/// The closures run synchronously on a thread that belongs to the connection (a serial
/// dispatch queue per connection), never on the Swift cooperative pool: SQLite and
/// MariaDB Connector/C calls block. The `async` methods suspend the caller until the
/// closure has finished. A closure therefore cannot `await`, which keeps transactions
/// short and never holds database locks across a suspension.
public protocol SQLDatabase: Sendable {
    var dialect: SQLDialect { get }

    /// Lends a writer connection in autocommit mode: each statement commits on its own.
    /// On MariaDB a statement that finds the connection lost reconnects and runs again once.
    @discardableResult
    func withConnection<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T) async throws -> T

    /// Runs `body` in a write transaction: commits when it returns, rolls back when it
    /// throws (and rethrows). SQLite takes the write lock up front (`BEGIN IMMEDIATE`),
    /// MariaDB starts an InnoDB transaction (REPEATABLE READ; row locks as statements run).
    /// - Throws: what `body` throws, or a `GatehouseError` from BEGIN/COMMIT. A lost MariaDB
    ///   connection inside a transaction throws `.unavailable`: the server rolled back, the
    ///   caller may retry the whole transaction.
    @discardableResult
    func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T) async throws -> T

    /// Runs `body` in a read-only transaction (one consistent snapshot). SQLite uses a
    /// reader connection, so reads do not wait for the writer.
    func read<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T) async throws -> T

    /// `transaction`, for callers on threads of their own that may block (libmicrohttpd's
    /// workers): the closure runs on the calling thread, with no hop through the
    /// cooperative pool. - Important: never call it from an async context.
    func transactionBlocking<T>(_ body: (any SQLConnection) throws -> T) throws -> T

    /// `read`, blocking; see `transactionBlocking`.
    func readBlocking<T>(_ body: (any SQLConnection) throws -> T) throws -> T

    /// Closes idle connections and refuses new work; connections in use close when returned.
    func close() async
}

/// Transaction control that only the drivers and this module use: callers go through
/// `SQLDatabase.transaction` / `read`, which always pair BEGIN with COMMIT or ROLLBACK.
protocol TransactionalConnection: SQLConnection {
    func begin(_ mode: TransactionMode) throws
    func commit() throws
    /// Never throws: called on error paths; a failed rollback is logged by the driver
    /// and leaves the connection usable (or marks it for reconnect).
    func rollback()
}

enum TransactionMode {
    case write
    case readOnly
}

extension TransactionalConnection {
    /// BEGIN, `body`, COMMIT; ROLLBACK and rethrow when anything throws.
    func runTransaction<T>(_ mode: TransactionMode, _ body: () throws -> T) throws -> T {
        try begin(mode)
        let result: T
        do {
            result = try body()
        } catch {
            rollback()
            throw error
        }
        do {
            try commit()
        } catch {
            rollback()
            throw error
        }
        return result
    }
}
