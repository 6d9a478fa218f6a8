import Foundation
import GatehouseDomain
import Testing

private func body(_ json: String) throws -> [String: JSONValue] { try JSONValue.parseObject(Array(json.utf8)) }

private let now: Millis = 1_796_300_000_000  // 2026-12-02T…Z

@Suite("Request validation names the bad field")
struct RequestValidationTests {
    @Test func deviceKeyAcceptsAES128AndAES256() throws {
        let r128 = try DeviceKeyRequest.parse(try body(#"{"device_id":"STB-0001","key":"000102030405060708090a0b0c0d0e0f"}"#))
        #expect(r128.deviceID == "STB-0001")
        #expect(r128.key == Array(0...15))
        let r256 = try DeviceKeyRequest.parse(
            try body(#"{"device_id":"a:b_c.d-e","key":"\#(String(repeating: "AB", count: 32))"}"#))
        #expect(r256.key == [UInt8](repeating: 0xAB, count: 32))
    }

    @Test(arguments: [
        (#"{"device_id":"x","key":"00"}"#, "key"),
        (#"{"device_id":"x","key":"zz0102030405060708090a0b0c0d0e0f"}"#, "key"),
        (#"{"device_id":"","key":"000102030405060708090a0b0c0d0e0f"}"#, "device_id"),
        (#"{"device_id":"bad id","key":"000102030405060708090a0b0c0d0e0f"}"#, "device_id"),
        (#"{"key":"000102030405060708090a0b0c0d0e0f"}"#, "device_id"),
        (#"{"device_id":"x","key":"000102030405060708090a0b0c0d0e0f","extra":1}"#, "extra"),
        (#"{"device_id":7,"key":"000102030405060708090a0b0c0d0e0f"}"#, "device_id"),
    ])
    func deviceKeyRejects(json: String, field: String) throws {
        let error = #expect(throws: ValidationError.self) { try DeviceKeyRequest.parse(try body(json)) }
        #expect(error?.field == field)
    }

    @Test func keyErrorNeverRepeatsTheKey() throws {
        let secret = "0011223344556677889900112233445Z"
        let error = #expect(throws: ValidationError.self) {
            try DeviceKeyRequest.parse(try body(#"{"device_id":"x","key":"\#(secret)"}"#))
        }
        #expect(error.map { !$0.description.contains("00112233") } == true)
    }

    @Test func entitlementTimes() throws {
        let ok = try AddEntitlementRequest.parse(
            try body(#"{"device_id":"d1","product_id":65535,"start_time":"2026-12-03T10:00:00Z","end_time":"2027-01-03T10:00:00+01:00"}"#),
            now: now)
        #expect(ok.productID == 65535)
        #expect(ok.startsAt == 1_796_292_000_000)
        #expect(ok.endsAt == 1_798_966_800_000)
        let defaulted = try AddEntitlementRequest.parse(
            try body(#"{"device_id":"d1","product_id":1,"end_time":"2027-01-01T00:00:00.5Z"}"#), now: now)
        #expect(defaulted.startsAt == now)
        #expect(defaulted.endsAt == 1_798_761_600_500)
    }

    @Test(arguments: [
        (#"{"device_id":"d1","product_id":0,"end_time":"2027-01-01T00:00:00Z"}"#, "product_id"),
        (#"{"device_id":"d1","product_id":65536,"end_time":"2027-01-01T00:00:00Z"}"#, "product_id"),
        (#"{"device_id":"d1","product_id":1.5,"end_time":"2027-01-01T00:00:00Z"}"#, "product_id"),
        (#"{"device_id":"d1","product_id":"1","end_time":"2027-01-01T00:00:00Z"}"#, "product_id"),
        (#"{"device_id":"d1","product_id":1}"#, "end_time"),
        (#"{"device_id":"d1","product_id":1,"end_time":"2027-01-01"}"#, "end_time"),
        (#"{"device_id":"d1","product_id":1,"start_time":"2027-02-01T00:00:00Z","end_time":"2027-01-01T00:00:00Z"}"#, "end_time"),
        (#"{"device_id":"d1","product_id":1,"end_time":"2020-01-01T00:00:00Z"}"#, "end_time"),
        (#"{"device_id":"d1","product_id":1,"end_time":"2030-02-30T00:00:00Z"}"#, "end_time"),
        (#"{"device_id":"d1","product_id":1,"end_time":"2030-01-01T24:00:00Z"}"#, "end_time"),
        (#"{"device_id":"d1","product_id":9223372036854775807,"end_time":"2030-01-01T00:00:00Z"}"#, "product_id"),
        (#"{"device_id":"d1","product_id":-1e300,"end_time":"2030-01-01T00:00:00Z"}"#, "product_id"),
    ])
    func entitlementRejects(json: String, field: String) throws {
        let error = #expect(throws: ValidationError.self) { try AddEntitlementRequest.parse(try body(json), now: now) }
        #expect(error?.field == field)
    }

    @Test func iso8601RoundTripsAndKnowsTheCalendar() throws {
        #expect(ISO8601.format(0) == "1970-01-01T00:00:00.000Z")
        #expect(ISO8601.format(951_782_400_123) == "2000-02-29T00:00:00.123Z")
        #expect(ISO8601.parse("2000-02-29T00:00:00.123Z")?.timeIntervalSince1970 == 951_782_400.123)
        #expect(ISO8601.parse("2024-03-01T01:30:00+01:30")?.timeIntervalSince1970 == 1_709_251_200)
        #expect(ISO8601.parse("2023-02-29T00:00:00Z") == nil)
        #expect(ISO8601.parse("2023-01-01 00:00:00Z") == nil)
        #expect(ISO8601.parse("2023-01-01T00:00:00") == nil)
        for millis: Millis in [1, 999, 86_399_999, 1_796_300_000_000, 4_102_444_799_999] {
            let text = ISO8601.format(millis)
            #expect(try Validate.time(text, field: "t") == millis, "\(text)")
        }
    }

    @Test func osmTargetsAndDefaults() throws {
        let one = try OSMRequest.parse(try body(#"{"device_id":"d1","text":"Hello ✓"}"#), now: now)
        #expect(one.target == .device("d1"))
        #expect(one.message.kind == .scrollBottom)
        #expect(one.message.expiresAt == now + 86_400_000)
        let all = try OSMRequest.parse(try body(#"{"all":true,"kind":"forced","text":"Pay","priority":7}"#), now: now)
        #expect(all.target == .all)
        #expect(all.message.isUrgent)
        let finger = try OSMRequest.parse(try body(#"{"device_ids":["a","b"],"kind":"fingerprint","position":{"x":10,"y":90}}"#), now: now)
        #expect(finger.target == .devices(["a", "b"]))
        #expect(finger.message.position == ScreenPosition(x: 10, y: 90))
    }

    @Test(arguments: [
        (#"{"text":"hi"}"#, "device_id"),
        (#"{"device_id":"a","all":true,"text":"hi"}"#, "device_id"),
        (#"{"device_ids":["a","a"],"text":"hi"}"#, "device_ids[1]"),
        (#"{"device_ids":[],"text":"hi"}"#, "device_ids"),
        (#"{"device_id":"a"}"#, "text"),
        (#"{"device_id":"a","text":"hi","kind":"popup"}"#, "kind"),
        (#"{"device_id":"a","text":"hi","priority":8}"#, "priority"),
        (#"{"device_id":"a","text":"hi","duration":0}"#, "duration"),
        (#"{"device_id":"a","text":"hi\u0007"}"#, "text"),
        (#"{"device_id":"a","kind":"fingerprint","position":{"x":101,"y":0}}"#, "x"),
    ])
    func osmRejects(json: String, field: String) throws {
        let error = #expect(throws: ValidationError.self) { try OSMRequest.parse(try body(json), now: now) }
        #expect(error?.field == field)
    }

    @Test func osmTextLimitIsInBytes() throws {
        let text = String(repeating: "é", count: 513)  // 1026 bytes
        let error = #expect(throws: ValidationError.self) {
            try OSMRequest.parse(try body(#"{"device_id":"a","text":"\#(text)"}"#), now: now)
        }
        #expect(error?.field == "text")
    }

    @Test(arguments: ["", "[1]", "{", "\u{FF}", "null"])
    func bodyMustBeAJSONObject(raw: String) {
        let error = #expect(throws: ValidationError.self) { try JSONValue.parseObject(Array(raw.utf8)) }
        #expect(error?.field == "body")
    }

    @Test func commandRoundTripCarriesNoClearKey() throws {
        let command = Command(
            requestID: "r1", actor: "sms", acceptedAt: now,
            action: .registerDeviceKey(deviceID: "d1", wrappedKey: Data([1, 2, 3]), kcv: "ABCDEF", keyBits: 128))
        let bytes = try command.encoded()
        #expect(try Command.decode(bytes) == command)
        #expect(command.partitionKey == "d1")
        let osmAll = Command(requestID: "r2", actor: "sms", acceptedAt: now,
            action: .sendOSM(try OSMRequest.parse(try body(#"{"all":true,"text":"x"}"#), now: now)))
        #expect(osmAll.partitionKey == "*")
    }
}

@Suite("Request ids")
struct RequestIdentifierTests {
    @Test func versionSevenUUIDsCarryTheTimeAndSortByIt() throws {
        let now: Millis = 1_796_300_000_123
        let id = RequestIdentifier.make(now: now)
        #expect(id.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}/) != nil, "\(id)")
        // Foundation reads it as a UUID, and the first 48 bits are the milliseconds.
        let uuid = try #require(UUID(uuidString: id))
        let bytes = withUnsafeBytes(of: uuid.uuid) { Array($0) }
        #expect(bytes[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } == UInt64(now))
        #expect(bytes[6] >> 4 == 7)
        #expect(bytes[8] >> 6 == 0b10)
        // Later milliseconds sort later; ids in one millisecond still differ.
        #expect(RequestIdentifier.make(now: now + 1) > id)
        let sameMillisecond = Set((0..<10_000).map { _ in RequestIdentifier.make(now: now) })
        #expect(sameMillisecond.count == 10_000)
    }
}
