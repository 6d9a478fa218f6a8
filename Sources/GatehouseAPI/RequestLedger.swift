import Foundation
import GatehouseCore
import GatehouseDomain
import GatehouseStore
import Synchronization

/// What `accept` answers: a new request, or the stored answer to an earlier one with the
/// same `Idempotency-Key` and body.
public struct AcceptedRequest: Sendable, Equatable {
    public var requestID: String
    public var isReplay: Bool
}

/// Puts a command on the bus inside the transaction that stores its request, for a bus
/// that lives in the API's own database (the embedded bus). The bus row then commits with
/// the request, so the outbox relay has nothing to move and the worker sees the command
/// one write transaction sooner. The CLI builds it from `EmbeddedBusProducer`.
public struct InTransactionPublisher: Sendable {
    /// Appends one command (`key`: its partition key, `at`: milliseconds since the epoch)
    /// inside the caller's write transaction; plain statements, safe to run again after a
    /// rollback (`GroupCommit` may).
    public var append: @Sendable (_ connection: any SQLConnection, _ key: String, _ payload: [UInt8], _ at: Int64) throws -> Void
    /// Commands on the bus the worker has not taken yet: the API's backlog in this mode.
    public var backlog: @Sendable (_ connection: any SQLConnection) throws -> Int

    public init(
        append: @escaping @Sendable (any SQLConnection, String, [UInt8], Int64) throws -> Void,
        backlog: @escaping @Sendable (any SQLConnection) throws -> Int
    ) {
        self.append = append
        self.backlog = backlog
    }
}

/// Stores accepted requests: the `requests` row and its outbox entry in one
/// transaction, so an acknowledged request is never lost and never half-stored.
/// Requests accepted at the same moment on different HTTP threads share that
/// transaction (`GroupCommit`): one commit for all of them, each answered after it.
///
/// With an `InTransactionPublisher` the command goes onto the bus in that transaction as
/// well, and its outbox row is stored already stamped published (the relay still finds it
/// there to publish again if its request stays unprocessed too long).
public final class RequestLedger: Sendable {
    let database: any SQLDatabase
    let configuration: APIConfiguration
    let groupCommit: GroupCommit
    let publisher: InTransactionPublisher?
    private let backlog = Mutex<(count: Int, measuredAt: UInt64)>((0, 0))

    public init(database: any SQLDatabase, configuration: APIConfiguration, publisher: InTransactionPublisher? = nil) {
        self.database = database
        self.configuration = configuration
        self.groupCommit = GroupCommit(database: database)
        self.publisher = publisher
    }

    /// Stores a command durably without waiting: the checks that need no write run now,
    /// the inserts join the next group commit, and `completion` gets the outcome once it
    /// has committed (on the group commit's thread; keep it short). A replay of an earlier
    /// request completes at once, on this thread.
    /// - Parameters:
    ///   - idempotencyKey: the caller's `Idempotency-Key`, already scoped to the caller.
    ///   - bodyDigest: a keyed digest of the canonical body, compared on replays.
    /// - Throws: before anything is queued (and then `completion` is not called): `.conflict`
    ///   when the key was used with another body; `.unavailable` when the backlog is over its
    ///   limit; database errors. Errors of the commit itself go to `completion`.
    public func accept(
        _ command: Command, idempotencyKey: String?, bodyDigest: String,
        completion: @escaping @Sendable (Result<AcceptedRequest, any Error>) -> Void
    ) throws {
        if let idempotencyKey, let earlier = try lookup(idempotencyKey: idempotencyKey, bodyDigest: bodyDigest) {
            completion(.success(earlier))
            return
        }
        try checkBacklog()
        let payload = try command.encoded()
        let response = #"{"request_id":"\#(command.requestID)","status":"accepted"}"#
        let publisher = self.publisher
        groupCommit.submit({ connection in
            try connection.execute(
                """
                INSERT INTO requests (request_id, kind, idempotency_key, body_hash, token_name, status, accepted_at, response)
                VALUES (?, ?, ?, ?, ?, 'accepted', ?, ?)
                """,
                .text(command.requestID), .text(command.kind), SQLValue(idempotencyKey), .text(bodyDigest),
                .text(command.actor), .int64(command.acceptedAt), .text(response))
            if let publisher {
                try connection.execute(
                    "INSERT INTO outbox (request_id, partition_key, payload, created_at, published_at) "
                        + "VALUES (?, ?, ?, ?, ?)",
                    .text(command.requestID), .text(command.partitionKey), .blob(payload),
                    .int64(command.acceptedAt), .int64(command.acceptedAt))
                try publisher.append(connection, command.partitionKey, payload, command.acceptedAt)
            } else {
                try connection.execute(
                    "INSERT INTO outbox (request_id, partition_key, payload, created_at) VALUES (?, ?, ?, ?)",
                    .text(command.requestID), .text(command.partitionKey), .blob(payload), .int64(command.acceptedAt))
            }
        }) { [self] result in
            switch result {
            case .success:
                backlog.withLock { $0.count += 1 }
                completion(.success(AcceptedRequest(requestID: command.requestID, isReplay: false)))
            case .failure(let error as GatehouseError) where error.code == .conflict && idempotencyKey != nil:
                // Two requests with one key raced; the other one won (GroupCommit answers the
                // loser after the winner's commit). Answer as a replay.
                completion(
                    Result {
                        guard let earlier = try lookup(idempotencyKey: idempotencyKey!, bodyDigest: bodyDigest) else {
                            throw GatehouseError(.unavailable,
                                "another request with this Idempotency-Key was being stored at the same time and was "
                                    + "not; retry in \(configuration.retryAfterSeconds) s")
                        }
                        return earlier
                    })
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    private func lookup(idempotencyKey: String, bodyDigest: String) throws -> AcceptedRequest? {
        let row = try database.readBlocking { connection in
            try connection.queryFirst(
                "SELECT request_id, body_hash FROM requests WHERE idempotency_key = ?", .text(idempotencyKey))
        }
        guard let row else { return nil }
        guard try row.text("body_hash") == bodyDigest else {
            throw GatehouseError(.conflict,
                "this Idempotency-Key was already used with a different body; use a new key for a new request")
        }
        return AcceptedRequest(requestID: try row.text("request_id"), isReplay: true)
    }

    /// Refuses new work while the unpublished outbox is over the limit. The count is
    /// measured at most every 500 ms and kept up to date in between.
    private func checkBacklog() throws {
        let now = DispatchTime.now().uptimeNanoseconds
        let (count, measuredAt) = backlog.withLock { ($0.count, $0.measuredAt) }
        var current = count
        if measuredAt == 0 || now - measuredAt > 500_000_000 {
            current = try unpublishedCount()
            backlog.withLock { $0 = (current, now) }
        }
        if current >= configuration.outboxBacklogLimit {
            throw GatehouseError(.unavailable,
                "\(current) accepted requests are waiting to be processed; retry in \(configuration.retryAfterSeconds) s")
        }
    }

    /// Accepted requests whose command has not left the outbox yet, plus (with an
    /// `InTransactionPublisher`) those on the bus the worker has not taken yet.
    public func unpublishedCount() throws -> Int {
        let publisher = self.publisher
        return try database.readBlocking { connection in
            let outbox =
                try connection.queryFirst("SELECT COUNT(*) AS n FROM outbox WHERE published_at IS NULL")?.int("n") ?? 0
            return try outbox + (publisher?.backlog(connection) ?? 0)
        }
    }
}
