import Foundation
import GatehouseCore

/// What an API token may do. A struct so deployments can add scopes without a new release
/// of this module; Gatehouse's own routes use the three below.
public struct Scope: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// Read endpoints (devices, entitlements, request status).
    public static let read = Scope("read")
    /// Writes (entitlements, OSMs, device registration without keys).
    public static let write = Scope("write")
    /// Registering and rotating device keys: the most sensitive operation.
    public static let keys = Scope("keys")

    /// Parses `read,write,keys` (spaces allowed).
    /// - Throws: `GatehouseError.invalidInput` naming an empty or malformed scope.
    public static func parseList(_ text: String) throws(GatehouseError) -> Set<Scope> {
        var scopes: Set<Scope> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = part.trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F }) else {
                throw GatehouseError(.invalidInput, "scope '\(name)' is not a lowercase word (use read, write, keys)")
            }
            scopes.insert(Scope(name))
        }
        return scopes
    }
}

/// Who is calling: the token's name (for audit logs) and what it may do.
public struct AuthenticatedCaller: Sendable, Equatable {
    public var name: String
    public var scopes: Set<Scope>
    public init(name: String, scopes: Set<Scope>) {
        self.name = name
        self.scopes = scopes
    }
    public func has(_ scope: Scope) -> Bool { scopes.contains(scope) }
}

/// Turns a presented bearer token into a caller, or nil when the token is unknown.
/// Called on libmicrohttpd's worker threads, so it must be thread-safe and may block.
public protocol TokenAuthenticator: Sendable {
    func authenticate(token: String) -> AuthenticatedCaller?
}

/// Authenticates against a fixed list of token hashes (from configuration or a store
/// snapshot). Only the hash of each token is kept; the hash function is injected because
/// this module does not depend on the crypto module (Gatehouse passes SHA-256).
public struct StaticTokenAuthenticator: TokenAuthenticator {
    /// One known token: its name, the hex digest of the token's UTF-8 bytes, its scopes.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var hashHex: String
        public var scopes: Set<Scope>
        public init(name: String, hashHex: String, scopes: Set<Scope>) {
            self.name = name
            self.hashHex = hashHex
            self.scopes = scopes
        }
    }

    private struct Stored: Sendable {
        var caller: AuthenticatedCaller
        var digest: [UInt8]
    }

    private let stored: [Stored]
    private let hash: @Sendable ([UInt8]) -> [UInt8]

    /// - Parameter hash: the digest function the hashes were made with (SHA-256 in Gatehouse).
    /// - Throws: `GatehouseError.configuration` naming the entry whose hash is not even-length hex.
    public init(entries: [Entry], hash: @escaping @Sendable ([UInt8]) -> [UInt8]) throws(GatehouseError) {
        var stored: [Stored] = []
        for entry in entries {
            guard let digest = Hex.decode(entry.hashHex), !digest.isEmpty else {
                throw GatehouseError(.configuration, "token '\(entry.name)': the hash is not hex")
            }
            stored.append(Stored(caller: AuthenticatedCaller(name: entry.name, scopes: entry.scopes), digest: digest))
        }
        self.stored = stored
        self.hash = hash
    }

    /// Hashes `token` once and compares it with every stored digest in constant time,
    /// visiting all entries so the time taken does not reveal which (if any) matched.
    public func authenticate(token: String) -> AuthenticatedCaller? {
        guard !token.isEmpty else { return nil }
        let digest = hash(Array(token.utf8))
        var match: AuthenticatedCaller?
        for entry in stored where ConstantTime.equals(entry.digest, digest) && match == nil {
            match = entry.caller
        }
        return match
    }
}

/// Byte comparison whose duration depends only on the lengths, never on where the
/// bytes first differ (so a timing attacker learns nothing about a stored digest).
public enum ConstantTime {
    public static func equals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices { difference |= lhs[index] ^ rhs[index] }
        return difference == 0
    }
}

/// Hex helpers local to this module (the core module has none).
enum Hex {
    static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    private static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x61...0x66: byte - 0x61 + 10
        case 0x41...0x46: byte - 0x41 + 10
        default: nil
        }
    }
}
