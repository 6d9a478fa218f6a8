import GatehouseCrypto

/// The plaintext layout of each payload kind (see docs/emm-format.md, "Payload").
/// Lengths are exact: trailing bytes are an error, so one plaintext has one meaning.
enum EMMPayloadCodec {
    /// The plaintext size of `payload`, after checking every field can be encoded.
    static func size(of payload: EMMPayload) throws(EMMError) -> Int {
        switch payload {
        case .entitlementAdd(let grant):
            guard grant.end > grant.start else {
                throw .invalidField("entitlement end (\(grant.end)) must be after its start (\(grant.start))")
            }
            return 11
        case .entitlementCancel:
            return 3
        case .onScreenMessage(let message):
            guard message.expiry >= message.start else {
                throw .invalidField(
                    "on-screen message expiry (\(message.expiry)) is before its start (\(message.start))")
            }
            let textBytes = message.text.utf8.count
            guard textBytes <= EMMLayout.maximumTextBytes else {
                throw .invalidField(
                    "on-screen message text is \(textBytes) UTF-8 bytes; the limit is \(EMMLayout.maximumTextBytes)")
            }
            return 18 + textBytes
        case .keyUpdate(let update):
            return 4 + update.newKey.byteCount
        }
    }

    /// Writes `payload` into `out`, which is exactly `size(of:)` bytes.
    static func write(_ payload: EMMPayload, into out: UnsafeMutableRawBufferPointer) {
        out[0] = payload.kind
        switch payload {
        case .entitlementAdd(let grant):
            out.put16(grant.productID, at: 1)
            out.put32(grant.start, at: 3)
            out.put32(grant.end, at: 7)
        case .entitlementCancel(let productID):
            out.put16(productID, at: 1)
        case .onScreenMessage(let m):
            out[1] = m.style.rawValue
            out[2] = m.priority
            out.put16(m.durationSeconds, at: 3)
            out.put32(m.start, at: 5)
            out.put32(m.expiry, at: 9)
            out[13] = m.repeatCount
            out[14] = m.position.x
            out[15] = m.position.y
            var text = m.text
            let count = text.utf8.count
            out.put16(UInt16(count), at: 16)
            text.withUTF8 { utf8 in
                UnsafeMutableRawBufferPointer(rebasing: out[18..<(18 + count)]).copyMemory(
                    from: UnsafeRawBufferPointer(utf8))
            }
        case .keyUpdate(let update):
            out.put16(update.newKeyVersion, at: 1)
            out[3] = UInt8(update.newKey.byteCount)
            update.newKey.withUnsafeBytes { key in
                UnsafeMutableRawBufferPointer(rebasing: out[4..<(4 + key.count)]).copyMemory(from: key)
            }
        }
    }

    /// Reads an authenticated plaintext.
    /// - Throws: `EMMError.malformedPayload` naming what does not fit the layout.
    static func read(_ p: UnsafeRawBufferPointer) throws(EMMError) -> EMMPayload {
        guard p.count >= 1 else { throw .malformedPayload("empty plaintext") }
        func need(_ n: Int, _ what: String) throws(EMMError) {
            guard p.count == n else { throw .malformedPayload("\(what) needs \(n) bytes, has \(p.count)") }
        }
        switch p[0] {
        case EMMLayout.Kind.entitlementAdd:
            try need(11, "entitlement add")
            return .entitlementAdd(EntitlementGrant(productID: p.be16(1), start: p.be32(3), end: p.be32(7)))
        case EMMLayout.Kind.entitlementCancel:
            try need(3, "entitlement cancel")
            return .entitlementCancel(productID: p.be16(1))
        case EMMLayout.Kind.onScreenMessage:
            guard p.count >= 18 else {
                throw .malformedPayload("on-screen message needs at least 18 bytes, has \(p.count)")
            }
            guard let style = OSMStyle(rawValue: p[1]) else {
                throw .malformedPayload("unknown on-screen message style \(p[1])")
            }
            let textCount = Int(p.be16(16))
            try need(18 + textCount, "on-screen message with \(textCount) text bytes")
            guard textCount <= EMMLayout.maximumTextBytes else {
                throw .malformedPayload("on-screen message text of \(textCount) bytes exceeds the limit")
            }
            guard let text = String(validating: p[18..<(18 + textCount)], as: UTF8.self) else {
                throw .malformedPayload("on-screen message text is not valid UTF-8")
            }
            return .onScreenMessage(
                OnScreenMessage(
                    style: style, priority: p[2], durationSeconds: p.be16(3), start: p.be32(5),
                    expiry: p.be32(9), repeatCount: p[13], position: ScreenPosition(x: p[14], y: p[15]), text: text))
        case EMMLayout.Kind.keyUpdate:
            guard p.count >= 4 else { throw .malformedPayload("key update needs at least 4 bytes, has \(p.count)") }
            let keyLength = Int(p[3])
            guard keyLength == 16 || keyLength == 32 else {
                throw .malformedPayload("key update carries a \(keyLength)-byte key; expected 16 or 32")
            }
            try need(4 + keyLength, "key update")
            do {
                let key = try SymmetricKey(UnsafeRawBufferPointer(rebasing: p[4..<(4 + keyLength)]))
                return .keyUpdate(KeyUpdate(newKeyVersion: p.be16(1), newKey: key))
            } catch {
                throw .crypto(error)
            }
        default:
            throw .malformedPayload("unknown payload kind 0x\(String(p[0], radix: 16))")
        }
    }
}
