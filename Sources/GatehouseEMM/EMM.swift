import GatehouseCrypto

/// Who an EMM is for. The class and the address travel in the clear (authenticated)
/// header so a receiver filters without a key.
public enum EMMAddressing: Sendable, Hashable, CustomStringConvertible {
    /// One device (set-top box / smart card) by its 64-bit unique address.
    case unique(deviceID: UInt64)
    /// A group of devices sharing a group key.
    case shared(groupID: UInt64)
    /// Every device (global key).
    case global

    /// The class code on the wire (byte 9).
    public var classCode: UInt8 {
        switch self {
        case .unique: EMMLayout.AddressingClass.unique
        case .shared: EMMLayout.AddressingClass.shared
        case .global: EMMLayout.AddressingClass.global
        }
    }

    /// The 64-bit address on the wire (bytes 10–17); 0 for global.
    public var address: UInt64 {
        switch self {
        case .unique(let id), .shared(let id): id
        case .global: 0
        }
    }

    /// - Throws: `EMMError.unknownAddressingClass` for a class code this version does not know.
    public init(classCode: UInt8, address: UInt64) throws(EMMError) {
        switch classCode {
        case EMMLayout.AddressingClass.unique: self = .unique(deviceID: address)
        case EMMLayout.AddressingClass.shared: self = .shared(groupID: address)
        case EMMLayout.AddressingClass.global: self = .global
        default: throw .unknownAddressingClass(classCode)
        }
    }

    public var description: String {
        switch self {
        case .unique(let id): "unique(\(id))"
        case .shared(let id): "shared(\(id))"
        case .global: "global"
        }
    }
}

/// An entitlement to one product over a time window (Unix seconds, inclusive start,
/// exclusive end).
public struct EntitlementGrant: Sendable, Hashable {
    public var productID: UInt16
    public var start: UInt32
    public var end: UInt32

    public init(productID: UInt16, start: UInt32, end: UInt32) {
        self.productID = productID
        self.start = start
        self.end = end
    }
}

/// How a receiver presents an on-screen message.
public enum OSMStyle: UInt8, Sendable, Hashable, CaseIterable {
    case scrollingTop = 0
    case scrollingBottom = 1
    /// A modal message the viewer cannot dismiss before `duration`.
    case forced = 2
    /// Stored in the receiver's mailbox for the viewer to read later.
    case mailbox = 3
    /// The device's identity overlaid on the picture (forensic watermark).
    case fingerprint = 4
}

/// Where on screen a fingerprint or message appears, in percent of width and height;
/// `random` lets the receiver choose a new place each time (harder to crop out).
public struct ScreenPosition: Sendable, Hashable {
    public var x: UInt8
    public var y: UInt8

    public init(x: UInt8, y: UInt8) {
        self.x = x
        self.y = y
    }

    /// 0xFF in both bytes.
    public static let random = ScreenPosition(x: 0xFF, y: 0xFF)
}

/// An on-screen message.
public struct OnScreenMessage: Sendable, Hashable {
    public var style: OSMStyle
    /// 0 (lowest) to 255; a receiver shows the highest pending first.
    public var priority: UInt8
    /// How long to show it, in seconds; 0 means until the viewer dismisses it.
    public var durationSeconds: UInt16
    /// Unix seconds from which it may be shown.
    public var start: UInt32
    /// Unix seconds after which it must no longer be shown.
    public var expiry: UInt32
    /// How many times to show it (0 is treated as 1).
    public var repeatCount: UInt8
    public var position: ScreenPosition
    /// UTF-8 text, at most `EMMLayout.maximumTextBytes` bytes.
    public var text: String

    public init(
        style: OSMStyle, priority: UInt8 = 0, durationSeconds: UInt16, start: UInt32, expiry: UInt32,
        repeatCount: UInt8 = 1, position: ScreenPosition = .random, text: String
    ) {
        self.style = style
        self.priority = priority
        self.durationSeconds = durationSeconds
        self.start = start
        self.expiry = expiry
        self.repeatCount = repeatCount
        self.position = position
        self.text = text
    }
}

/// A new device key, carried inside the encrypted payload: it is therefore encrypted
/// and authenticated under the device's current key.
public struct KeyUpdate: Sendable, Equatable {
    public var newKeyVersion: UInt16
    public var newKey: SymmetricKey

    public init(newKeyVersion: UInt16, newKey: SymmetricKey) {
        self.newKeyVersion = newKeyVersion
        self.newKey = newKey
    }
}

/// What an EMM tells the receiver. Every case is encrypted on the wire.
public enum EMMPayload: Sendable, Equatable {
    case entitlementAdd(EntitlementGrant)
    case entitlementCancel(productID: UInt16)
    case onScreenMessage(OnScreenMessage)
    case keyUpdate(KeyUpdate)

    /// The kind code (first plaintext byte).
    public var kind: UInt8 {
        switch self {
        case .entitlementAdd: EMMLayout.Kind.entitlementAdd
        case .entitlementCancel: EMMLayout.Kind.entitlementCancel
        case .onScreenMessage: EMMLayout.Kind.onScreenMessage
        case .keyUpdate: EMMLayout.Kind.keyUpdate
        }
    }

    /// A short name for logs and metrics labels.
    public var kindName: String {
        switch self {
        case .entitlementAdd: "entitlement_add"
        case .entitlementCancel: "entitlement_cancel"
        case .onScreenMessage: "osm"
        case .keyUpdate: "key_update"
        }
    }
}

/// One Entitlement Management Message, before sealing or after opening.
///
/// `sealed(open(x)) == x` for every field: the opener returns exactly what was sealed.
public struct EMM: Sendable, Equatable {
    public var addressing: EMMAddressing
    /// The version of the key that seals this EMM (the receiver picks its key by it).
    public var keyVersion: UInt16
    /// Strictly increasing per address; a receiver refuses anything not above the
    /// highest it accepted (see `ReplayGuard`). Also the high 8 bytes of the nonce.
    public var sequenceNumber: UInt64
    /// When the EMM was built, Unix seconds.
    public var timestamp: UInt32
    public var payload: EMMPayload

    public init(
        addressing: EMMAddressing, keyVersion: UInt16, sequenceNumber: UInt64, timestamp: UInt32,
        payload: EMMPayload
    ) {
        self.addressing = addressing
        self.keyVersion = keyVersion
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.payload = payload
    }
}
