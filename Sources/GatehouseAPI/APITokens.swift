import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseHTTP
import GatehouseStore
import Synchronization

/// API bearer tokens: made here, shown once, stored only as a SHA-256 hash with their
/// scopes in `api_tokens`.
public struct APITokens: Sendable {
    let database: any SQLDatabase

    public init(database: any SQLDatabase) { self.database = database }

    /// Makes a token for `name` with `scopes` and returns it; it cannot be shown again.
    /// - Throws: `.conflict` when a token with this name exists; `.invalidInput` for a bad name.
    public func create(name: String, scopes: Set<Scope>, now: Int64) async throws -> String {
        guard !name.isEmpty, name.utf8.count <= 64,
            name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3A && $0 != 0x2C })
        else {
            throw GatehouseError(.invalidInput, "a token name is 1 to 64 visible ASCII characters without ':' or ','")
        }
        guard !scopes.isEmpty else { throw GatehouseError(.invalidInput, "give at least one scope: read, write, keys") }
        let token = "gh_" + Hex.encode(try SecureRandom.bytes(count: 24))
        let hash = try SHA256.hexDigest(of: token)
        let scopeList = scopes.map(\.rawValue).sorted().joined(separator: ",")
        do {
            try await database.withConnection { connection in
                try connection.execute(
                    "INSERT INTO api_tokens (name, token_hash, scopes, created_at) VALUES (?, ?, ?, ?)", .text(name),
                    .text(hash), .text(scopeList), .int64(now))
            }
        } catch let error as GatehouseError where error.code == .conflict {
            throw GatehouseError(.conflict, "a token named \(name) exists already: revoke it or pick another name")
        }
        return token
    }

    /// Revokes the token called `name`; true when there was one to revoke.
    public func revoke(name: String, now: Int64) async throws -> Bool {
        try await database.withConnection { connection in
            try connection.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", .int64(now), .text(name)
            ).affectedRows > 0
        }
    }

    /// The live tokens' names, hashes and scopes.
    public func entries() async throws -> [StaticTokenAuthenticator.Entry] {
        try await database.read { connection in
            try connection.query("SELECT name, token_hash, scopes FROM api_tokens WHERE revoked_at IS NULL ORDER BY name")
                .map { row in
                    StaticTokenAuthenticator.Entry(
                        name: try row.text("name"), hashHex: try row.text("token_hash"),
                        scopes: try Scope.parseList(try row.text("scopes")))
                }
        }
    }

    public func count() async throws -> Int {
        try await database.read { try $0.queryFirst("SELECT COUNT(*) AS n FROM api_tokens WHERE revoked_at IS NULL")?.int("n") ?? 0 }
    }
}

/// Authenticates against the tokens in the store, reloaded by `refresh()` (the API
/// service calls it every few seconds, so a new or revoked token takes effect without
/// a restart).
public final class StoredTokenAuthenticator: TokenAuthenticator {
    private let current: Mutex<StaticTokenAuthenticator>
    private let tokens: APITokens

    public init(tokens: APITokens) async throws {
        self.tokens = tokens
        self.current = Mutex(try StaticTokenAuthenticator(entries: try await tokens.entries(), hash: Self.sha256))
    }

    public func refresh() async throws {
        let fresh = try StaticTokenAuthenticator(entries: try await tokens.entries(), hash: Self.sha256)
        current.withLock { $0 = fresh }
    }

    public func authenticate(token: String) -> AuthenticatedCaller? {
        let authenticator = current.withLock { $0 }
        return authenticator.authenticate(token: token)
    }

    static let sha256: @Sendable ([UInt8]) -> [UInt8] = { bytes in (try? SHA256.hash(bytes)) ?? [] }
}
