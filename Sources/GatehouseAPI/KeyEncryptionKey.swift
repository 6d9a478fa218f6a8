import Foundation
import GatehouseCore
import GatehouseCrypto

/// The key-encryption key (KEK): wraps every device key at rest (AES key wrap) and
/// derives the key that authenticates idempotency digests. It lives in a file of 64
/// hex digits (AES-256), readable by its owner only.
public struct KeyEncryptionKey: Sendable {
    public let key: SymmetricKey
    /// Derived once: HMAC key for request-body digests (never the KEK itself).
    let digestKey: [UInt8]

    public init(key: SymmetricKey) throws {
        self.key = key
        self.digestKey = try key.withUnsafeBytes { raw in
            try HMACSHA256.authenticationCode(for: Array("gatehouse request digest v1".utf8), key: Array(raw))
        }
    }

    /// Reads the KEK from `path`; when the file is missing and `createIfMissing` is set,
    /// makes a random AES-256 KEK there first (mode 0600).
    /// - Throws: `GatehouseError.configuration` naming the file when it cannot be read or
    ///   does not hold 32 or 64 hex digits (the content is never repeated).
    public static func load(path: String, createIfMissing: Bool, logger: Logger) throws -> KeyEncryptionKey {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            guard createIfMissing else {
                throw GatehouseError(.configuration,
                    "GATEHOUSE_KEK_FILE \(path) does not exist: create one with `gatehouse keygen --kek \(path)`")
            }
            try create(path: path)
            logger.notice("kek.created", ["kek.file": path])
        }
        guard let data = manager.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw GatehouseError(.configuration, "GATEHOUSE_KEK_FILE \(path) cannot be read: check its permissions")
        }
        do {
            return try KeyEncryptionKey(key: try SymmetricKey(hex: text))
        } catch {
            throw GatehouseError(.configuration,
                "GATEHOUSE_KEK_FILE \(path) must hold one AES key as 32 or 64 hex digits")
        }
    }

    /// Writes a new random AES-256 KEK to `path` (mode 0600); refuses to overwrite.
    public static func create(path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        let key = try SymmetricKey.random(size: .bits256)
        var text = Array((key.unsafeHexString() + "\n").utf8)
        defer { SecureMemory.zero(&text) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            throw GatehouseError(.io, "cannot create KEK file \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == text.count, fsync(fd) == 0 else {
            throw GatehouseError(.io, "cannot write KEK file \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Wraps a device key for storage and transport.
    public func wrap(_ deviceKey: SymmetricKey) throws -> [UInt8] { try AESKeyWrap.wrap(deviceKey, kek: key) }

    /// Unwraps a stored device key.
    public func unwrap(_ wrapped: [UInt8]) throws -> SymmetricKey { try AESKeyWrap.unwrap(wrapped, kek: key) }

    /// A keyed digest of a canonical request body: lets `Idempotency-Key` compare bodies
    /// without storing anything from which a key in the body could be recovered.
    public func digest(_ canonicalBody: String) throws -> String {
        Hex.encode(try HMACSHA256.authenticationCode(for: Array(canonicalBody.utf8), key: digestKey))
    }
}
