import Foundation
import Testing

@testable import GatehouseDomain
import GatehouseTestSupport

/// What the outbox held before the hand-written encoder: the reference for every byte.
private func foundationEncoded(_ command: Command) throws -> [UInt8] {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Array(try encoder.encode(command))
}

private func foundationDecoded(_ bytes: [UInt8]) -> Command? {
    try? JSONDecoder().decode(Command.self, from: Data(bytes))
}

/// The hand-written reader alone, without the `JSONDecoder` fallback.
private func fastDecoded(_ bytes: [UInt8]) -> Command? {
    bytes.withUnsafeBufferPointer { try? Command.readJSON(from: $0) }
}

private let millisEdges: [Millis] = [0, 1, -1, 1_796_300_000_000, 253_402_300_799_999, .max, .min]

private func randomCommand(_ index: Int, using rng: inout SplitMix64) -> Command {
    func text() -> String {
        Bool.random(using: &rng) ? trickyStrings.randomElement(using: &rng)! : rng.string()
    }
    func millis() -> Millis {
        Bool.random(using: &rng) ? millisEdges.randomElement(using: &rng)! : Millis.random(in: .min ... .max, using: &rng)
    }
    let action: Action
    switch index % 8 {
    case 0:
        // Lengths 0...70 cover every Base64 padding and, with random bytes, '+' and '/'.
        let key = Data((0..<Int.random(in: 0...70, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let bits = [128, 256, 0, -1, .max, .min].randomElement(using: &rng)!
        action = .registerDeviceKey(deviceID: text(), wrappedKey: key, kcv: text(), keyBits: bits)
    case 1:
        action = .addEntitlement(
            AddEntitlementRequest(
                deviceID: text(), productID: UInt16.random(in: 0...UInt16.max, using: &rng), startsAt: millis(), endsAt: millis()))
    case 2:
        action = .cancelEntitlement(deviceID: text(), productID: [0, 1, .max].randomElement(using: &rng)!)
    case 3:
        action = .setDeviceStatus(
            deviceID: text(), status: [DeviceStatus.active, .suspended, .revoked].randomElement(using: &rng)!)
    default:
        let target: OSMTarget
        switch index % 8 {
        case 4: target = .device(text())
        case 5: target = .devices((0..<Int.random(in: 0...5, using: &rng)).map { _ in text() })
        default: target = .all
        }
        let position: ScreenPosition? =
            Bool.random(using: &rng)
            ? ScreenPosition(x: UInt8.random(in: 0...255, using: &rng), y: UInt8.random(in: 0...255, using: &rng)) : nil
        let message = OnScreenMessage(
            kind: OSMKind.allCases.randomElement(using: &rng)!, text: text(),
            priority: UInt8.random(in: 0...255, using: &rng), durationSeconds: UInt16.random(in: 0...UInt16.max, using: &rng),
            startsAt: millis(), expiresAt: millis(), repeatCount: UInt8.random(in: 0...255, using: &rng), position: position)
        action = .sendOSM(OSMRequest(target: target, message: message))
    }
    return Command(requestID: text(), actor: text(), acceptedAt: millis(), action: action)
}

@Suite("Command bytes are JSONEncoder's, byte for byte")
struct CommandCodingTests {
    @Test func generatedCommandsEncodeAsFoundationAndRoundTrip() throws {
        var rng = SplitMix64(seed: 0x434F_4D44)
        for index in 0..<4000 {
            let command = randomCommand(index, using: &rng)
            let bytes = try command.encoded()
            let reference = try foundationEncoded(command)
            #expect(bytes == reference, "\(String(decoding: reference, as: UTF8.self))")
            #expect(fastDecoded(bytes) == command, "\(String(decoding: bytes, as: UTF8.self))")
            #expect(try Command.decode(bytes) == command)
            #expect(foundationDecoded(bytes) == command)
        }
    }

    /// Fixed bytes, so the format is pinned even if Foundation's encoder ever changes.
    @Test func goldenBytes() throws {
        let key = Data([0xFB, 0xFF, 0xBF, 0x01, 0x02])
        let cases: [(Command, String)] = [
            (
                Command(
                    requestID: "r/1", actor: "sms \"x\"", acceptedAt: 1_796_300_000_000,
                    action: .registerDeviceKey(deviceID: "d1", wrappedKey: key, kcv: "ABCDEF", keyBits: 128)),
                #"{"acceptedAt":1796300000000,"action":{"registerDeviceKey":{"deviceID":"d1","kcv":"ABCDEF","keyBits":128,"wrappedKey":"+\/+\/AQI="}},"actor":"sms \"x\"","requestID":"r\/1"}"#
            ),
            (
                Command(
                    requestID: "r2", actor: "a", acceptedAt: -5,
                    action: .addEntitlement(AddEntitlementRequest(deviceID: "d", productID: 65535, startsAt: 1, endsAt: 2))),
                #"{"acceptedAt":-5,"action":{"addEntitlement":{"_0":{"deviceID":"d","endsAt":2,"productID":65535,"startsAt":1}}},"actor":"a","requestID":"r2"}"#
            ),
            (
                Command(
                    requestID: "r3", actor: "a", acceptedAt: 0,
                    action: .sendOSM(
                        OSMRequest(
                            target: .devices(["x", "y"]),
                            message: OnScreenMessage(
                                kind: .fingerprint, text: "tab\t\u{1}\u{7F}é😀", priority: 7, durationSeconds: 10, startsAt: 3,
                                expiresAt: 4, repeatCount: 1, position: ScreenPosition(x: 50, y: 100))))),
                #"{"acceptedAt":0,"action":{"sendOSM":{"_0":{"message":{"durationSeconds":10,"expiresAt":4,"kind":"fingerprint","position":{"x":50,"y":100},"priority":7,"repeatCount":1,"startsAt":3,"text":"tab\t\u0001"#
                    + "\u{7F}é😀" + #""},"target":{"devices":{"_0":["x","y"]}}}}},"actor":"a","requestID":"r3"}"#
            ),
            (
                Command(
                    requestID: "r4", actor: "a", acceptedAt: 0,
                    action: .sendOSM(
                        OSMRequest(
                            target: .all,
                            message: OnScreenMessage(
                                kind: .scrollTop, text: "\u{8}\u{C}", priority: 0, durationSeconds: 1, startsAt: 0,
                                expiresAt: 1, repeatCount: 255, position: nil)))),
                #"{"acceptedAt":0,"action":{"sendOSM":{"_0":{"message":{"durationSeconds":1,"expiresAt":1,"kind":"scroll_top","priority":0,"repeatCount":255,"startsAt":0,"text":"\b\f"},"target":{"all":{}}}}},"actor":"a","requestID":"r4"}"#
            ),
            (
                Command(requestID: "r5", actor: "a", acceptedAt: 0, action: .cancelEntitlement(deviceID: "d", productID: 9)),
                #"{"acceptedAt":0,"action":{"cancelEntitlement":{"deviceID":"d","productID":9}},"actor":"a","requestID":"r5"}"#
            ),
            (
                Command(requestID: "r6", actor: "a", acceptedAt: 0, action: .setDeviceStatus(deviceID: "d", status: .revoked)),
                #"{"acceptedAt":0,"action":{"setDeviceStatus":{"deviceID":"d","status":"revoked"}},"actor":"a","requestID":"r6"}"#
            ),
        ]
        for (command, golden) in cases {
            #expect(try command.encoded() == Array(golden.utf8))
            #expect(try foundationEncoded(command) == Array(golden.utf8))
            #expect(try Command.decode(Array(golden.utf8)) == command)
        }
    }

    /// Documents `JSONDecoder` takes that the fast reader leaves to it: they still decode,
    /// to the same command.
    @Test func otherShapesFallBackToFoundation() throws {
        let canonical = #"{"acceptedAt":7,"action":{"cancelEntitlement":{"deviceID":"d","productID":9}},"actor":"a","requestID":"r"}"#
        let expected = Command(requestID: "r", actor: "a", acceptedAt: 7, action: .cancelEntitlement(deviceID: "d", productID: 9))
        let spaced = """
             { "requestID" : "r", "actor":"a",
              "action": { "cancelEntitlement" : { "productID" : 9 , "deviceID" : "d" } } , "acceptedAt" : 7 }\n
            """
        #expect(fastDecoded(Array(spaced.utf8)) == expected)  // key order and spacing are fine
        let fallbacks = [
            canonical.replacingOccurrences(of: #""actor":"a""#, with: #""actor":"a","extra":[1,{"x":null}]"#),
            canonical.replacingOccurrences(of: #""productID":9"#, with: #""productID":9.0"#),
            canonical.replacingOccurrences(of: #""productID":9"#, with: #""productID":9e0"#),
            canonical.replacingOccurrences(of: #""actor""#, with: #""\u0061ctor""#),
            canonical.replacingOccurrences(of: "}},", with: "},},"),
            canonical.replacingOccurrences(of: #""productID":9"#, with: #""productID":9,"#),
            "\u{FEFF}" + canonical,
        ]
        for document in fallbacks {
            let bytes = Array(document.utf8)
            #expect(fastDecoded(bytes) == nil, "\(document)")
            let reference = foundationDecoded(bytes)
            #expect(reference == expected, "\(document)")
            #expect(try Command.decode(bytes) == reference)
        }
    }

    @Test func garbageStillFailsAsBefore() {
        let canonical = #"{"acceptedAt":7,"action":{"cancelEntitlement":{"deviceID":"d","productID":9}},"actor":"a","requestID":"r"}"#
        for document in [
            "", "{}", "[]", "null", canonical + "x", String(canonical.dropLast()),
            canonical.replacingOccurrences(of: #""productID":9"#, with: #""productID":70000"#),
            canonical.replacingOccurrences(of: #""productID":9"#, with: #""productID":-1"#),
            canonical.replacingOccurrences(of: "cancelEntitlement", with: "cancelEverything"),
            canonical.replacingOccurrences(of: #""acceptedAt":7,"#, with: ""),
            canonical.replacingOccurrences(of: #"}},"actor""#, with: #"},"setDeviceStatus":{"deviceID":"d","status":"active"}},"actor""#),
        ] {
            #expect(throws: DecodingError.self, "\(document)") { try Command.decode(Array(document.utf8)) }
        }
    }

    /// Damaged commands: whatever the fast reader accepts, `JSONDecoder` accepts as the
    /// same command (so the fallback design never changes a result).
    @Test func fastReaderNeverAcceptsWhatFoundationRefuses() throws {
        var rng = SplitMix64(seed: 0x4D55_5441)
        let replacements: [UInt8] = Array(#"{}[]",:0123456789-.eE \/nultrfa"#.utf8) + [0x00, 0x80, 0xC3, 0xFF]
        var accepted = 0
        for index in 0..<3000 {
            var bytes = try randomCommand(index, using: &rng).encoded()
            for _ in 0..<Int.random(in: 1...2, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = replacements.randomElement(using: &rng)!
                case 1: bytes.remove(at: at)
                default: bytes.insert(replacements.randomElement(using: &rng)!, at: at)
                }
            }
            guard let fast = fastDecoded(bytes) else { continue }
            accepted += 1
            #expect(foundationDecoded(bytes) == fast, "\(String(decoding: bytes, as: UTF8.self))")
        }
        #expect(accepted > 100)  // the damage often lands in a string or a digit and still parses
    }
}
