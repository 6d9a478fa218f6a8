/// What an on-screen message does on the box, as operators know them from set-top boxes.
public enum OSMKind: String, Codable, Sendable, CaseIterable {
    /// Text scrolling across the top of the picture.
    case scrollTop = "scroll_top"
    /// Text scrolling across the bottom of the picture.
    case scrollBottom = "scroll_bottom"
    /// A message that blocks the remote control until it expires or its duration ends.
    case forced
    /// A message kept in the box's mailbox (the box keeps the latest ten).
    case mailbox
    /// The box overtly shows its own id at a position, for a duration (anti-piracy).
    case fingerprint
}

/// Who an OSM goes to.
public enum OSMTarget: Codable, Sendable, Equatable {
    case device(String)
    case devices([String])
    case all
}

/// Screen position for a fingerprint, in percent of the picture (0–100 each way).
public struct ScreenPosition: Codable, Sendable, Equatable {
    public var x: UInt8
    public var y: UInt8
    public init(x: UInt8, y: UInt8) {
        self.x = x
        self.y = y
    }
}

/// A validated on-screen message.
public struct OnScreenMessage: Codable, Sendable, Equatable {
    public var kind: OSMKind
    public var text: String
    /// 0 (routine) to 7 (most urgent); 6 and above go ahead of routine repetition on air.
    public var priority: UInt8
    public var durationSeconds: UInt16
    public var startsAt: Millis
    public var expiresAt: Millis
    public var repeatCount: UInt8
    public var position: ScreenPosition?

    /// OSM text must fit one EMM section with room for the header and tag.
    public static let maximumTextBytes = 1024
    public var isUrgent: Bool { priority >= 6 || kind == .forced }

    public init(kind: OSMKind, text: String, priority: UInt8, durationSeconds: UInt16, startsAt: Millis,
        expiresAt: Millis, repeatCount: UInt8, position: ScreenPosition?)
    {
        self.kind = kind
        self.text = text
        self.priority = priority
        self.durationSeconds = durationSeconds
        self.startsAt = startsAt
        self.expiresAt = expiresAt
        self.repeatCount = repeatCount
        self.position = position
    }
}

/// `POST /device_keys`: register a device with its key, or rotate the key of a known one.
public struct DeviceKeyRequest: Sendable {
    public var deviceID: String
    /// The clear key. - Important: wipe after wrapping; never log or store it.
    public var key: [UInt8]

    public static func parse(_ body: [String: JSONValue]) throws(ValidationError) -> DeviceKeyRequest {
        let reader = FieldReader(body)
        try reader.rejectUnknown(allowed: ["device_id", "key"])
        let deviceID = try Validate.deviceID(try reader.requiredString("device_id"))
        let key = try Validate.hexKey(try reader.requiredString("key"))
        return DeviceKeyRequest(deviceID: deviceID, key: key)
    }
}

/// `POST /add_entitlement`: a product for a device from a start to an end time.
public struct AddEntitlementRequest: Sendable, Equatable, Codable {
    public var deviceID: String
    public var productID: UInt16
    public var startsAt: Millis
    public var endsAt: Millis

    public init(deviceID: String, productID: UInt16, startsAt: Millis, endsAt: Millis) {
        self.deviceID = deviceID
        self.productID = productID
        self.startsAt = startsAt
        self.endsAt = endsAt
    }

    /// - Parameter now: used as the start when `start_time` is absent.
    public static func parse(_ body: [String: JSONValue], now: Millis) throws(ValidationError) -> AddEntitlementRequest {
        let reader = FieldReader(body)
        try reader.rejectUnknown(allowed: ["device_id", "product_id", "start_time", "end_time"])
        let deviceID = try Validate.deviceID(try reader.requiredString("device_id"))
        let productID = try Validate.productID(try reader.integer("product_id", in: Int64.min...Int64.max))
        let start = try Validate.time(try reader.string("start_time"), field: "start_time") ?? now
        guard let end = try Validate.time(try reader.string("end_time"), field: "end_time") else {
            throw ValidationError(field: "end_time", "is required")
        }
        guard end > start else { throw ValidationError(field: "end_time", "must be after start_time") }
        guard end > now else { throw ValidationError(field: "end_time", "is already in the past") }
        return AddEntitlementRequest(deviceID: deviceID, productID: productID, startsAt: start, endsAt: end)
    }
}

/// `POST /generate_osm`: a message for one device, a list, or all devices.
public struct OSMRequest: Sendable, Equatable, Codable {
    public var target: OSMTarget
    public var message: OnScreenMessage

    public init(target: OSMTarget, message: OnScreenMessage) {
        self.target = target
        self.message = message
    }

    /// The most devices one request may list; larger audiences use `all` (or several requests).
    public static let maximumDeviceList = 1000

    public static func parse(_ body: [String: JSONValue], now: Millis) throws(ValidationError) -> OSMRequest {
        let reader = FieldReader(body)
        try reader.rejectUnknown(allowed: [
            "device_id", "device_ids", "all", "kind", "text", "priority", "duration", "start_time", "expiry_time",
            "repeat_count", "position",
        ])
        let target = try parseTarget(reader)
        let kindName = try reader.string("kind") ?? OSMKind.scrollBottom.rawValue
        guard let kind = OSMKind(rawValue: kindName) else {
            throw ValidationError(
                field: "kind", "must be one of " + OSMKind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let text = try reader.string("text") ?? ""
        if kind != .fingerprint && text.isEmpty { throw ValidationError(field: "text", "is required for a \(kind.rawValue) message") }
        guard text.utf8.count <= OnScreenMessage.maximumTextBytes else {
            throw ValidationError(field: "text", "must be at most \(OnScreenMessage.maximumTextBytes) bytes of UTF-8")
        }
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" }) else {
            throw ValidationError(field: "text", "must not contain control characters other than newline")
        }
        let priority = try reader.integer("priority", in: 0...7) ?? 0
        let duration = try reader.integer("duration", in: 1...86_400) ?? 10
        let repeatCount = try reader.integer("repeat_count", in: 1...255) ?? 1
        let start = try Validate.time(try reader.string("start_time"), field: "start_time") ?? now
        let expiry = try Validate.time(try reader.string("expiry_time"), field: "expiry_time") ?? (start + 86_400_000)
        guard expiry > start else { throw ValidationError(field: "expiry_time", "must be after start_time") }
        guard expiry > now else { throw ValidationError(field: "expiry_time", "is already in the past") }
        var position: ScreenPosition?
        if let pos = try reader.object("position") {
            try pos.rejectUnknown(allowed: ["x", "y"])
            guard let x = try pos.integer("x", in: 0...100), let y = try pos.integer("y", in: 0...100) else {
                throw ValidationError(field: "position", "needs x and y, each 0 to 100 (percent of the picture)")
            }
            position = ScreenPosition(x: UInt8(x), y: UInt8(y))
        } else if kind == .fingerprint {
            position = ScreenPosition(x: 50, y: 50)
        }
        let message = OnScreenMessage(
            kind: kind, text: text, priority: UInt8(priority), durationSeconds: UInt16(duration), startsAt: start,
            expiresAt: expiry, repeatCount: UInt8(repeatCount), position: position)
        return OSMRequest(target: target, message: message)
    }

    static func parseTarget(_ reader: FieldReader) throws(ValidationError) -> OSMTarget {
        let one = try reader.string("device_id")
        let list = try reader.stringArray("device_ids")
        let all = try reader.bool("all") ?? false
        let given = (one != nil ? 1 : 0) + (list != nil ? 1 : 0) + (all ? 1 : 0)
        guard given == 1 else {
            throw ValidationError(field: "device_id", "give exactly one target: device_id, device_ids, or all: true")
        }
        if let one { return .device(try Validate.deviceID(one)) }
        if let list {
            guard !list.isEmpty, list.count <= maximumDeviceList else {
                throw ValidationError(field: "device_ids", "must list 1 to \(maximumDeviceList) devices")
            }
            var seen = Set<String>()
            for (index, id) in list.enumerated() {
                _ = try Validate.deviceID(id, field: "device_ids[\(index)]")
                guard seen.insert(id).inserted else { throw ValidationError(field: "device_ids[\(index)]", "is listed twice") }
            }
            return .devices(list)
        }
        return .all
    }
}
