import Dispatch
import GatehouseCore

/// The embedded store: one SQLite file in WAL mode, one writer connection and a few
/// reader connections.
///
/// SQLite allows one writer at a time per file; a single writer connection queues writers
/// in the pool (fair, in-process) instead of letting them spin on `SQLITE_BUSY`. Readers
/// read the last committed snapshot in parallel with the writer (WAL).
public final class SQLiteDatabase: SQLDatabase {
    public struct Configuration: Sendable {
        /// The database file (created when missing). `-wal` and `-shm` files appear next to it.
        public var path: String
        /// Reader connections for `read`. Default 16, so each HTTP worker thread (4 per
        /// core) finds one free instead of queueing for it (4 readers held device reads at
        /// 10,000/s with 32 threads, 16 gave 19,000/s with 8); a reader costs a file handle
        /// and its page cache. 0 sends reads to the writer (needed for `:memory:`, which is
        /// private to one connection).
        public var readerCount: Int = 16
        /// How long a connection waits for a lock held by another process. Default 5 s.
        public var busyTimeoutMilliseconds: Int = 5000
        /// Default `true` (`synchronous=NORMAL`): commits survive a process crash; a power
        /// loss may lose the last transactions. `false` syncs at every commit (`FULL`).
        public var isRelaxedSync: Bool = true
        /// Prepared statements kept per connection. Default 64.
        public var statementCacheCapacity: Int = 64
        /// How often a background connection checkpoints the WAL into the database file.
        /// Default 100 ms; nil leaves checkpoints to the commit that crosses SQLite's
        /// threshold (slower commits, p99 spikes). Ignored for `:memory:`.
        public var checkpointInterval: Duration? = .milliseconds(100)

        public init(path: String) { self.path = path }
    }

    public let configuration: Configuration
    private let writer: ConnectionPool<SQLiteConnection>
    private let readers: ConnectionPool<SQLiteConnection>?
    private let checkpointer: SQLiteCheckpointer?
    private let logger: Logger

    public var dialect: SQLDialect { .sqlite }

    private init(
        configuration: Configuration, writer: ConnectionPool<SQLiteConnection>,
        readers: ConnectionPool<SQLiteConnection>?, checkpointer: SQLiteCheckpointer?, logger: Logger
    ) {
        self.configuration = configuration
        self.writer = writer
        self.readers = readers
        self.checkpointer = checkpointer
        self.logger = logger
    }

    /// Opens the file and its writer connection now (so WAL is on before any reader
    /// opens); readers open on first use.
    /// - Throws: `GatehouseError.database` when the file cannot be opened or set up.
    public static func open(_ configuration: Configuration, logger: Logger) async throws -> SQLiteDatabase {
        let path = configuration.path
        let isMemory = path == ":memory:"
        let sync: SQLiteConnection.Synchronous = configuration.isRelaxedSync ? .normal : .full
        let busy = configuration.busyTimeoutMilliseconds
        let capacity = max(1, configuration.statementCacheCapacity)
        let writerPool = ConnectionPool<SQLiteConnection>(name: "sqlite-writer", maxSize: 1) {
            try SQLiteConnection.make(
                path: path, isWriter: true, busyTimeoutMilliseconds: busy, synchronous: sync, cacheCapacity: capacity)
        }
        // Open the writer through the pool so it lives on its own queue from the start.
        _ = try await writerPool.withConnection { _ in 0 }
        var readerPool: ConnectionPool<SQLiteConnection>?
        if configuration.readerCount > 0 && !isMemory {
            readerPool = ConnectionPool(name: "sqlite-reader", maxSize: configuration.readerCount) {
                try SQLiteConnection.make(
                    path: path, isWriter: false, busyTimeoutMilliseconds: busy, synchronous: sync,
                    cacheCapacity: capacity)
            }
        }
        logger.info(
            "sqlite database open",
            ["db.path": path, "db.readers": String(readerPool?.maxSize ?? 0), "db.synchronous": sync.rawValue])
        let checkpointer = configuration.checkpointInterval.flatMap { interval in
            isMemory ? nil : SQLiteCheckpointer(path: path, interval: interval, busyTimeoutMilliseconds: busy, logger: logger)
        }
        return SQLiteDatabase(
            configuration: configuration, writer: writerPool, readers: readerPool, checkpointer: checkpointer,
            logger: logger)
    }

    @discardableResult

    public func withConnection<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T)
        async throws -> T
    {
        try await writer.withConnection { connection in try body(connection) }
    }

    @discardableResult

    public func transaction<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T)
        async throws -> T
    {
        try await writer.withConnection { connection in
            try connection.runTransaction(.write) { try body(connection) }
        }
    }

    public func read<T: Sendable>(_ body: @escaping @Sendable (any SQLConnection) throws -> T) async throws -> T {
        try await (readers ?? writer).withConnection { connection in
            try connection.runTransaction(.readOnly) { try body(connection) }
        }
    }

    public func transactionBlocking<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try writer.withConnectionBlocking { connection in
            try connection.runTransaction(.write) { try body(connection) }
        }
    }

    public func readBlocking<T>(_ body: (any SQLConnection) throws -> T) throws -> T {
        try (readers ?? writer).withConnectionBlocking { connection in
            try connection.runTransaction(.readOnly) { try body(connection) }
        }
    }

    /// Stops the checkpointer, closes readers, then the writer (whose close checkpoints the WAL into the file).
    public func close() async {
        if let checkpointer {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                DispatchQueue.global().async {
                    checkpointer.stop()
                    done.resume()
                }
            }
        }
        await readers?.close()
        await writer.close()
    }

    deinit { checkpointer?.stop() }
}
