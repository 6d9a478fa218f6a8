import Foundation

/// An accepted request as it travels from the API to the worker over the bus (and as
/// it waits in the outbox). It never carries a clear key: a device key is wrapped with
/// the key-encryption key before the command is built.
public struct Command: Codable, Sendable, Equatable {
    public var requestID: String
    /// The name of the API token that asked (for the audit log).
    public var actor: String
    public var acceptedAt: Millis
    public var action: Action

    public init(requestID: String, actor: String, acceptedAt: Millis, action: Action) {
        self.requestID = requestID
        self.actor = actor
        self.acceptedAt = acceptedAt
        self.action = action
    }

    /// Commands for one device share a key so they are applied in order; a message to
    /// all devices uses `*`.
    public var partitionKey: String {
        switch action {
        case .registerDeviceKey(let deviceID, _, _, _), .cancelEntitlement(let deviceID, _),
            .setDeviceStatus(let deviceID, _):
            return deviceID
        case .addEntitlement(let request): return request.deviceID
        case .sendOSM(let request):
            if case .device(let id) = request.target { return id }
            return "*"
        }
    }

    /// The request kind as `GET /requests/{id}` shows it.
    public var kind: String {
        switch action {
        case .registerDeviceKey: "device_key"
        case .addEntitlement: "add_entitlement"
        case .cancelEntitlement: "cancel_entitlement"
        case .sendOSM: "generate_osm"
        case .setDeviceStatus(_, let status): "device_\(status.rawValue)"
        }
    }

    /// The command as the outbox and the bus carry it: exactly the bytes `JSONEncoder` with
    /// `.sortedKeys` writes for the `Codable` conformance, written by hand (`Command+JSON.swift`)
    /// because the encoder was about 6% of the API's CPU per write.
    /// - Throws: never today; kept so callers need not change if the format ever can fail.
    public func encoded() throws -> [UInt8] {
        var writer = JSONByteWriter(capacity: 256)
        writeJSON(to: &writer)
        return writer.bytes
    }

    /// Reads bytes written by `encoded()` (or by the `JSONEncoder` it replaced).
    ///
    /// A hand-written reader takes the shape `encoded()` writes; anything else it leaves to
    /// `JSONDecoder`, so every input decodes, or fails, as it did before.
    /// - Throws: `DecodingError` when the bytes are not a command.
    public static func decode(_ bytes: [UInt8]) throws -> Command {
        let command = bytes.withUnsafeBufferPointer { buffer in try? readJSON(from: buffer) }
        if let command { return command }
        return try JSONDecoder().decode(Command.self, from: Data(bytes))
    }
}

/// What a command asks for.
public enum Action: Codable, Sendable, Equatable {
    /// Register a device or rotate its key. `wrappedKey` is the key under the KEK
    /// (AES key wrap); `kcv` its key check value; `keyBits` 128 or 256.
    case registerDeviceKey(deviceID: String, wrappedKey: Data, kcv: String, keyBits: Int)
    case addEntitlement(AddEntitlementRequest)
    case cancelEntitlement(deviceID: String, productID: UInt16)
    case sendOSM(OSMRequest)
    case setDeviceStatus(deviceID: String, status: DeviceStatus)
}

/// A device's life cycle: only active devices receive entitlements and messages; a
/// revoked device gets no more EMMs, ever.
public enum DeviceStatus: String, Codable, Sendable {
    case active, suspended, revoked
}
