import Foundation

// The command wire format, written and read by hand.
//
// The format is what `JSONEncoder` with `.sortedKeys` writes for the synthesized `Codable`
// conformances, and it is frozen: the outbox and the bus hold these bytes, so old rows must
// still decode and new bytes must be the ones the old code wrote. Concretely:
// - keys sorted by their UTF-8 bytes; nil optionals left out (`encodeIfPresent`);
// - an enum case is an object with one key, the case name, whose value is an object of the
//   associated values by label, `_0` for an unlabeled one, `{}` for none;
// - `Data` as padded standard Base64; integers in decimal;
// - strings escaped as `JSONEncoder` does: `\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`,
//   other control characters as `\u00xx`, everything else (DEL, non-ASCII) as is.
// Tests/GatehouseDomainTests/CommandCodingTests.swift compares both directions with Foundation.

extension Command {
    /// Writes the bytes `JSONEncoder` with `.sortedKeys` would write.
    func writeJSON(to writer: inout JSONByteWriter) {
        writer.append(#"{"acceptedAt":"#)
        writer.appendInteger(acceptedAt)
        writer.append(#","action":"#)
        action.writeJSON(to: &writer)
        writer.append(#","actor":"#)
        writer.appendQuoted(actor, .foundation)
        writer.append(#","requestID":"#)
        writer.appendQuoted(requestID, .foundation)
        writer.append("}")
    }

    /// Reads exactly the shape `writeJSON` writes (any key order and whitespace).
    ///
    /// Deliberately narrower than `JSONDecoder`: unknown or repeated keys, integers written
    /// with a fraction or exponent, keys with escapes, trailing commas or a byte order mark
    /// throw, and `Command.decode` then hands the bytes to `JSONDecoder`. So anything this
    /// accepts, `JSONDecoder` accepts with the same result, and anything else decodes (or
    /// fails) exactly as before.
    static func readJSON(from bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> Command {
        guard UTF8Validation.isValid(bytes) else { throw .invalid }
        var scanner = JSONScanner(bytes)
        var requestID: String?
        var actor: String?
        var acceptedAt: Millis?
        var action: Action?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("acceptedAt") {
                try assignOnce(&acceptedAt, try scanner.readInteger())
            } else if key.isKey("action") {
                try assignOnce(&action, try Action.readJSON(&scanner))
            } else if key.isKey("actor") {
                try assignOnce(&actor, try scanner.readStringValue())
            } else if key.isKey("requestID") {
                try assignOnce(&requestID, try scanner.readStringValue())
            } else {
                throw .invalid
            }
        }
        scanner.skipWhitespace()
        guard scanner.isAtEnd, let requestID, let actor, let acceptedAt, let action else { throw .invalid }
        return Command(requestID: requestID, actor: actor, acceptedAt: acceptedAt, action: action)
    }
}

extension Action {
    func writeJSON(to writer: inout JSONByteWriter) {
        switch self {
        case .registerDeviceKey(let deviceID, let wrappedKey, let kcv, let keyBits):
            writer.append(#"{"registerDeviceKey":{"deviceID":"#)
            writer.appendQuoted(deviceID, .foundation)
            writer.append(#","kcv":"#)
            writer.appendQuoted(kcv, .foundation)
            writer.append(#","keyBits":"#)
            writer.appendInteger(keyBits)
            writer.append(#","wrappedKey":"#)
            writer.appendQuotedBase64(wrappedKey)
            writer.append("}}")
        case .addEntitlement(let request):
            writer.append(#"{"addEntitlement":{"_0":"#)
            request.writeJSON(to: &writer)
            writer.append("}}")
        case .cancelEntitlement(let deviceID, let productID):
            writer.append(#"{"cancelEntitlement":{"deviceID":"#)
            writer.appendQuoted(deviceID, .foundation)
            writer.append(#","productID":"#)
            writer.appendInteger(productID)
            writer.append("}}")
        case .sendOSM(let request):
            writer.append(#"{"sendOSM":{"_0":"#)
            request.writeJSON(to: &writer)
            writer.append("}}")
        case .setDeviceStatus(let deviceID, let status):
            writer.append(#"{"setDeviceStatus":{"deviceID":"#)
            writer.appendQuoted(deviceID, .foundation)
            writer.append(#","status":"#)
            writer.appendQuoted(status.rawValue, .foundation)
            writer.append("}}")
        }
    }

    static func readJSON(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> Action {
        var action: Action?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            let value: Action
            if key.isKey("addEntitlement") {
                value = .addEntitlement(try scanner.readUnlabeled { (s) throws(JSONSyntaxError) in try AddEntitlementRequest.readJSON(&s) })
            } else if key.isKey("sendOSM") {
                value = .sendOSM(try scanner.readUnlabeled { (s) throws(JSONSyntaxError) in try OSMRequest.readJSON(&s) })
            } else if key.isKey("registerDeviceKey") {
                value = try readRegisterDeviceKey(&scanner)
            } else if key.isKey("cancelEntitlement") {
                value = try readCancelEntitlement(&scanner)
            } else if key.isKey("setDeviceStatus") {
                value = try readSetDeviceStatus(&scanner)
            } else {
                throw .invalid
            }
            try assignOnce(&action, value)  // an enum is an object with exactly one key
        }
        guard let action else { throw .invalid }
        return action
    }

    private static func readRegisterDeviceKey(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> Action {
        var deviceID: String?
        var wrappedKey: Data?
        var kcv: String?
        var keyBits: Int?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("deviceID") {
                try assignOnce(&deviceID, try scanner.readStringValue())
            } else if key.isKey("wrappedKey") {
                // The same conversion JSONDecoder's default `.base64` strategy uses.
                guard let data = Data(base64Encoded: try scanner.readStringValue()) else { throw .invalid }
                try assignOnce(&wrappedKey, data)
            } else if key.isKey("kcv") {
                try assignOnce(&kcv, try scanner.readStringValue())
            } else if key.isKey("keyBits") {
                try assignOnce(&keyBits, try scanner.readInteger(as: Int.self))
            } else {
                throw .invalid
            }
        }
        guard let deviceID, let wrappedKey, let kcv, let keyBits else { throw .invalid }
        return .registerDeviceKey(deviceID: deviceID, wrappedKey: wrappedKey, kcv: kcv, keyBits: keyBits)
    }

    private static func readCancelEntitlement(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> Action {
        var deviceID: String?
        var productID: UInt16?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("deviceID") {
                try assignOnce(&deviceID, try scanner.readStringValue())
            } else if key.isKey("productID") {
                try assignOnce(&productID, try scanner.readInteger(as: UInt16.self))
            } else {
                throw .invalid
            }
        }
        guard let deviceID, let productID else { throw .invalid }
        return .cancelEntitlement(deviceID: deviceID, productID: productID)
    }

    private static func readSetDeviceStatus(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> Action {
        var deviceID: String?
        var status: DeviceStatus?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("deviceID") {
                try assignOnce(&deviceID, try scanner.readStringValue())
            } else if key.isKey("status") {
                guard let value = DeviceStatus(rawValue: try scanner.readStringValue()) else { throw .invalid }
                try assignOnce(&status, value)
            } else {
                throw .invalid
            }
        }
        guard let deviceID, let status else { throw .invalid }
        return .setDeviceStatus(deviceID: deviceID, status: status)
    }
}

extension AddEntitlementRequest {
    func writeJSON(to writer: inout JSONByteWriter) {
        writer.append(#"{"deviceID":"#)
        writer.appendQuoted(deviceID, .foundation)
        writer.append(#","endsAt":"#)
        writer.appendInteger(endsAt)
        writer.append(#","productID":"#)
        writer.appendInteger(productID)
        writer.append(#","startsAt":"#)
        writer.appendInteger(startsAt)
        writer.append("}")
    }

    static func readJSON(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> AddEntitlementRequest {
        var deviceID: String?
        var productID: UInt16?
        var startsAt: Millis?
        var endsAt: Millis?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("deviceID") {
                try assignOnce(&deviceID, try scanner.readStringValue())
            } else if key.isKey("endsAt") {
                try assignOnce(&endsAt, try scanner.readInteger())
            } else if key.isKey("productID") {
                try assignOnce(&productID, try scanner.readInteger(as: UInt16.self))
            } else if key.isKey("startsAt") {
                try assignOnce(&startsAt, try scanner.readInteger())
            } else {
                throw .invalid
            }
        }
        guard let deviceID, let productID, let startsAt, let endsAt else { throw .invalid }
        return AddEntitlementRequest(deviceID: deviceID, productID: productID, startsAt: startsAt, endsAt: endsAt)
    }
}

extension OSMRequest {
    func writeJSON(to writer: inout JSONByteWriter) {
        writer.append(#"{"message":"#)
        message.writeJSON(to: &writer)
        writer.append(#","target":"#)
        target.writeJSON(to: &writer)
        writer.append("}")
    }

    static func readJSON(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> OSMRequest {
        var target: OSMTarget?
        var message: OnScreenMessage?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("message") {
                try assignOnce(&message, try OnScreenMessage.readJSON(&scanner))
            } else if key.isKey("target") {
                try assignOnce(&target, try OSMTarget.readJSON(&scanner))
            } else {
                throw .invalid
            }
        }
        guard let target, let message else { throw .invalid }
        return OSMRequest(target: target, message: message)
    }
}

extension OSMTarget {
    func writeJSON(to writer: inout JSONByteWriter) {
        switch self {
        case .device(let id):
            writer.append(#"{"device":{"_0":"#)
            writer.appendQuoted(id, .foundation)
            writer.append("}}")
        case .devices(let ids):
            writer.append(#"{"devices":{"_0":["#)
            for (i, id) in ids.enumerated() {
                if i > 0 { writer.append(ASCII.comma) }
                writer.appendQuoted(id, .foundation)
            }
            writer.append("]}}")
        case .all:
            writer.append(#"{"all":{}}"#)
        }
    }

    static func readJSON(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> OSMTarget {
        var target: OSMTarget?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            let value: OSMTarget
            if key.isKey("device") {
                value = .device(try scanner.readUnlabeled { (s) throws(JSONSyntaxError) in try s.readStringValue() })
            } else if key.isKey("devices") {
                value = .devices(try scanner.readUnlabeled { (s) throws(JSONSyntaxError) in try s.readStringArray() })
            } else if key.isKey("all") {
                // `{}` only: a case without values has no keys to read.
                try scanner.readMembers { (_, _) throws(JSONSyntaxError) in throw .invalid }
                value = .all
            } else {
                throw .invalid
            }
            try assignOnce(&target, value)
        }
        guard let target else { throw .invalid }
        return target
    }
}

extension OnScreenMessage {
    func writeJSON(to writer: inout JSONByteWriter) {
        writer.append(#"{"durationSeconds":"#)
        writer.appendInteger(durationSeconds)
        writer.append(#","expiresAt":"#)
        writer.appendInteger(expiresAt)
        writer.append(#","kind":"#)
        writer.appendQuoted(kind.rawValue, .foundation)
        if let position {
            writer.append(#","position":{"x":"#)
            writer.appendInteger(position.x)
            writer.append(#","y":"#)
            writer.appendInteger(position.y)
            writer.append("}")
        }
        writer.append(#","priority":"#)
        writer.appendInteger(priority)
        writer.append(#","repeatCount":"#)
        writer.appendInteger(repeatCount)
        writer.append(#","startsAt":"#)
        writer.appendInteger(startsAt)
        writer.append(#","text":"#)
        writer.appendQuoted(text, .foundation)
        writer.append("}")
    }

    static func readJSON(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> OnScreenMessage {
        var kind: OSMKind?
        var text: String?
        var priority: UInt8?
        var durationSeconds: UInt16?
        var startsAt: Millis?
        var expiresAt: Millis?
        var repeatCount: UInt8?
        var position: ScreenPosition?
        var hasPosition = false
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("durationSeconds") {
                try assignOnce(&durationSeconds, try scanner.readInteger(as: UInt16.self))
            } else if key.isKey("expiresAt") {
                try assignOnce(&expiresAt, try scanner.readInteger())
            } else if key.isKey("kind") {
                guard let value = OSMKind(rawValue: try scanner.readStringValue()) else { throw .invalid }
                try assignOnce(&kind, value)
            } else if key.isKey("position") {
                guard !hasPosition else { throw .invalid }
                hasPosition = true
                // `decodeIfPresent` reads null as absent.
                if scanner.peekSignificant() == ASCII.n {
                    try scanner.readLiteral("null")
                } else {
                    position = try ScreenPosition.readJSON(&scanner)
                }
            } else if key.isKey("priority") {
                try assignOnce(&priority, try scanner.readInteger(as: UInt8.self))
            } else if key.isKey("repeatCount") {
                try assignOnce(&repeatCount, try scanner.readInteger(as: UInt8.self))
            } else if key.isKey("startsAt") {
                try assignOnce(&startsAt, try scanner.readInteger())
            } else if key.isKey("text") {
                try assignOnce(&text, try scanner.readStringValue())
            } else {
                throw .invalid
            }
        }
        guard let kind, let text, let priority, let durationSeconds, let startsAt, let expiresAt, let repeatCount else {
            throw .invalid
        }
        return OnScreenMessage(
            kind: kind, text: text, priority: priority, durationSeconds: durationSeconds, startsAt: startsAt,
            expiresAt: expiresAt, repeatCount: repeatCount, position: position)
    }
}

extension ScreenPosition {
    static func readJSON(_ scanner: inout JSONScanner) throws(JSONSyntaxError) -> ScreenPosition {
        var x: UInt8?
        var y: UInt8?
        try scanner.readMembers { (scanner, key) throws(JSONSyntaxError) in
            if key.isKey("x") {
                try assignOnce(&x, try scanner.readInteger(as: UInt8.self))
            } else if key.isKey("y") {
                try assignOnce(&y, try scanner.readInteger(as: UInt8.self))
            } else {
                throw .invalid
            }
        }
        guard let x, let y else { throw .invalid }
        return ScreenPosition(x: x, y: y)
    }
}

// MARK: Reading helpers

extension JSONScanner {
    /// Reads the object at the cursor: `member` is called with each key's bytes and the
    /// cursor before its value, and must read that value.
    mutating func readMembers(
        _ member: (inout JSONScanner, UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> Void
    ) throws(JSONSyntaxError) {
        try expect(ASCII.openBrace)
        if peekSignificant() == ASCII.closeBrace {
            index += 1
            return
        }
        while true {
            let key = try readUnescapedString()
            try expect(ASCII.colon)
            try member(&self, key)
            switch peekSignificant() {
            case ASCII.comma: index += 1
            case ASCII.closeBrace:
                index += 1
                return
            default: throw .invalid
            }
        }
    }

    /// Reads `{"_0": value}`, an enum case's one unlabeled associated value.
    mutating func readUnlabeled<T>(
        _ read: (inout JSONScanner) throws(JSONSyntaxError) -> T
    ) throws(JSONSyntaxError) -> T {
        var value: T?
        try readMembers { (scanner, key) throws(JSONSyntaxError) in
            guard key.isKey("_0"), value == nil else { throw .invalid }
            value = try read(&scanner)
        }
        guard let value else { throw .invalid }
        return value
    }

    mutating func readStringValue() throws(JSONSyntaxError) -> String {
        guard peekSignificant() == ASCII.quote else { throw .invalid }
        return try readString()
    }

    mutating func readStringArray() throws(JSONSyntaxError) -> [String] {
        try expect(ASCII.openBracket)
        var items: [String] = []
        if peekSignificant() == ASCII.closeBracket {
            index += 1
            return items
        }
        while true {
            items.append(try readStringValue())
            switch peekSignificant() {
            case ASCII.comma: index += 1
            case ASCII.closeBracket:
                index += 1
                return items
            default: throw .invalid
            }
        }
    }

    /// `readInteger` narrowed to `type`; out of range throws, as it does in `JSONDecoder`.
    mutating func readInteger<T: FixedWidthInteger>(as type: T.Type) throws(JSONSyntaxError) -> T {
        guard let value = T(exactly: try readInteger()) else { throw .invalid }
        return value
    }
}

extension UnsafeBufferPointer<UInt8> {
    /// Whether these key bytes are `name`.
    fileprivate func isKey(_ name: StaticString) -> Bool {
        count == name.utf8CodeUnitCount && (count == 0 || memcmp(baseAddress!, name.utf8Start, count) == 0)
    }
}

/// Stores a decoded field, refusing a key that appears twice.
private func assignOnce<T>(_ slot: inout T?, _ value: T) throws(JSONSyntaxError) {
    guard slot == nil else { throw .invalid }
    slot = value
}
