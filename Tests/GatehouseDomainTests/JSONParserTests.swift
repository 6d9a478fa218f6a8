import Foundation
import Testing

@testable import GatehouseDomain
import GatehouseTestSupport

/// The body parser as it was: a UTF-8 check, then `JSONDecoder` through `JSONValue`'s
/// `Decodable` init.
private func foundationParse(_ bytes: [UInt8]) -> JSONValue? {
    guard String(validating: bytes, as: UTF8.self) != nil else { return nil }
    return try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
}

/// `0e1` … `0e9` are valid JSON that Foundation's `JSONDecoder` refuses (while it takes
/// `0e0`, `0e12`, `-0e4`, `0.0e4`); the parser follows RFC 8259 and reads 0.
private func isFoundationZeroExponentQuirk(_ number: String) -> Bool {
    let bytes = Array(number.utf8)
    return bytes.count == 3 && bytes[0] == UInt8(ascii: "0") && (bytes[1] | 0x20) == UInt8(ascii: "e")
        && (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[2])
}

private func parse(_ text: String) throws(ValidationError) -> [String: JSONValue] {
    try JSONValue.parseObject(Array(text.utf8))
}

private let notJSON = "the body is not valid JSON"
private let notObject = "the body must be a JSON object"
private let notUTF8 = "the body is not valid UTF-8"
private let tooDeep = "the body nests arrays and objects more than 64 deep"

private func nested(_ depth: Int) -> String {
    "{\"a\":" + String(repeating: "[", count: depth - 1) + String(repeating: "]", count: depth - 1) + "}"
}

@Suite("JSON body parser agrees with Foundation and is strict")
struct JSONParserTests {
    static let validDocuments: [String] = [
        "{}", " {\"a\":1} ", "\t{\"a\":[1,2,{\"b\":null}]}\r\n", #"{ "a" : [ true , false , null ] , "b" : { } }"#,
        #"{"n":[0,-0,1.5,-1.5e10,1E5,1e+5,1e-5,0.1e-2,123456789012345,1234567890123456,9007199254740993]}"#,
        #"{"n":[123456789012345678901234567890,0.30000000000000004,4.9e-324,2.5e-324,1.7976931348623157e308]}"#,
        #"{"n":[0e-400,0.000e999,-0.0,1e-7,-9223372036854775808,9223372036854775807,18446744073709551616]}"#,
        #"{"s":"\"\\\/\b\f\n\r\t","u":"\u00e9\u00E9\u20ac","p":"\uD83D\uDE00\ud83d\ude00","z":"\u0000"}"#,
        "{\"raw\":\"é😀\u{7F}\u{10FFFF}\u{2028}\",\"long\":\"abcdefghijklmnopqrstuvwxyz\"}",
        #"{"long escaped":"abcdefghijklmnopqrstuvwxyz\n0123456789"}"#,
        #"{"a\"b":1,"\u0063":2,"é":3,"":4}"#,
        #"{"a":"b","c":{"d":[[]],"e":[{}]}}"#,
        nested(64),
    ]

    @Test(arguments: validDocuments)
    func validDocumentParsesAsFoundationDid(document: String) throws {
        let bytes = Array(document.utf8)
        let ours = try JSONValue.parseObject(bytes)
        let reference = try #require(foundationParse(bytes))
        #expect(isIdentical(.object(ours), reference), "\(document)")
        // A second, independent reference for the values.
        let serialized = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? NSDictionary)
        #expect(serialized.count == ours.count)
    }

    @Test func valuesAreTheOnesWritten() throws {
        let object = try parse(
            #"{"s":"a\"b\\c\/d\u00e9\ud83d\ude00","i":-42,"d":0.5,"e":1e3,"t":true,"f":false,"n":null,"a":[1,"x",[]],"o":{"k":"v"}}"#)
        #expect(object["s"] == .string("a\"b\\c/dé😀"))
        #expect(object["i"] == .number(-42))
        #expect(object["d"] == .number(0.5))
        #expect(object["e"] == .number(1000))
        #expect(object["t"] == .bool(true))
        #expect(object["f"] == .bool(false))
        #expect(object["n"] == .null)
        #expect(object["a"] == .array([.number(1), .string("x"), .array([])]))
        #expect(object["o"] == .object(["k": .string("v")]))
        #expect(try parse(#"{"z":-0}"#)["z"].map { if case .number(let n) = $0 { n.sign == .minus } else { false } } == true)
    }

    @Test func byteOrderMarkIsSkippedOnce() throws {
        let bom: [UInt8] = [0xEF, 0xBB, 0xBF]
        #expect(try JSONValue.parseObject(bom + Array(#"{"a":1}"#.utf8)) == ["a": .number(1)])
        #expect(try JSONValue.parseObject(bom + Array("{}".utf8)) == [:])
        for bad in [bom, bom + bom + Array("{}".utf8), Array("{}".utf8) + bom, Array(" ".utf8) + bom + Array("{}".utf8)] {
            let error = #expect(throws: ValidationError.self) { try JSONValue.parseObject(bad) }
            #expect(error == ValidationError(field: "body", notJSON))
        }
    }

    /// Each invalid body, the error it gets, and whether `JSONDecoder` accepted it (the
    /// deliberate changes: trailing commas, depth, duplicate keys, UTF-16 text).
    static let invalidDocuments: [(document: [UInt8], error: ValidationError, foundationAccepted: Bool)] = {
        func text(_ s: String, _ message: String, field: String = "body", accepted: Bool = false)
            -> ([UInt8], ValidationError, Bool)
        { (Array(s.utf8), ValidationError(field: field, message), accepted) }
        func raw(_ b: [UInt8], _ message: String) -> ([UInt8], ValidationError, Bool) {
            (b, ValidationError(field: "body", message), false)
        }
        return [
            text("", "the request needs a JSON object body"),
            text("[1]", notObject), text("[]", notObject), text("null", notObject), text("\"x\"", notObject),
            text("1", notObject), text("true", notObject), text(" [{\"a\":1,\"a\":2}] ", notObject),
            text("   ", notJSON), text("{", notJSON), text("}", notJSON), text("{\"a\":1", notJSON),
            text("{\"a\":1,}", notJSON, accepted: true), text("{\"a\":[1,]}", notJSON, accepted: true),
            text("{\"a\":[,1]}", notJSON), text("{,}", notJSON), text("{\"a\":1,,\"b\":2}", notJSON),
            text("{\"a\":01}", notJSON), text("{\"a\":-01}", notJSON), text("{\"a\":1.}", notJSON),
            text("{\"a\":.5}", notJSON), text("{\"a\":+1}", notJSON), text("{\"a\":-}", notJSON),
            text("{\"a\":1e}", notJSON), text("{\"a\":1e+}", notJSON), text("{\"a\":1.5e}", notJSON),
            text("{\"a\":NaN}", notJSON), text("{\"a\":Infinity}", notJSON), text("{\"a\":-Infinity}", notJSON),
            text("{\"a\":0x10}", notJSON), text("{\"a\":1e400}", notJSON), text("{\"a\":-1e400}", notJSON),
            text("{\"a\":1e-400}", notJSON), text("{\"a\":2.4e-324}", notJSON),
            text("{\"a\":\"x\u{1}y\"}", notJSON), text("{\"a\":\"tab\there\"}", notJSON),
            text("{\"a\":\"line\nbreak\"}", notJSON), text("{\"a\u{1F}\":1}", notJSON),
            text(#"{"a":"\ud800"}"#, notJSON), text(#"{"a":"\udc00"}"#, notJSON),
            text(#"{"a":"\ud800\u0041"}"#, notJSON), text(#"{"a":"\ud800x"}"#, notJSON),
            text(#"{"a":"\ud800\ud800"}"#, notJSON), text(#"{"a":"\udc00\ud800"}"#, notJSON),
            text(#"{"a":"abc"#, notJSON), text(#"{"a":"abc\"#, notJSON), text(#"{"a":"\x"}"#, notJSON),
            text(#"{"a":"\U0041"}"#, notJSON), text(#"{"a":"\u12"}"#, notJSON), text(#"{"a":"\u12G4"}"#, notJSON),
            text(#"{"a":'x'}"#, notJSON), text("{a:1}", notJSON), text("{1:2}", notJSON), text("{\"a\"}", notJSON),
            text("{\"a\" 1}", notJSON), text("{\"a\":1 \"b\":2}", notJSON), text("{\"a\":tru}", notJSON),
            text("{\"a\":nul}", notJSON), text("{\"a\":True}", notJSON), text("{\"a\":1}x", notJSON),
            text("{\"a\":1}{}", notJSON), text("{} 1", notJSON), text("{}\u{0}", notJSON), text("\u{C}{}", notJSON),
            text("{\"a\":1}\u{C}", notJSON), text("{\"a\":\u{A0}1}", notJSON), text("/*c*/{}", notJSON),
            text(nested(65), tooDeep, accepted: true), text(nested(512), tooDeep, accepted: true),
            text(nested(1000), tooDeep), text(String(repeating: "[", count: 1000), tooDeep),
            text(#"{"a":1,"a":2}"#, "a appears more than once in one object", field: "a", accepted: true),
            text(#"{"o":{"k":1,"k":{}},"a":1}"#, "k appears more than once in one object", field: "k", accepted: true),
            text(#"{"\u0061":1,"a":2}"#, "a appears more than once in one object", field: "a", accepted: true),
            text(#"{"a":1,"a":2,"#, notJSON),
            (Array(#"{"a":1}"#.utf8).flatMap { [$0, 0] }, ValidationError(field: "body", notJSON), true),
            raw([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D], notUTF8),
            raw(Array(#"{"a":""#.utf8) + [0xC0, 0xAF] + Array(#""}"#.utf8), notUTF8),
            raw(Array(#"{"a":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8), notUTF8),
            raw(Array(#"{"a":""#.utf8) + [0xE2, 0x82] + Array(#""}"#.utf8), notUTF8),
            raw(Array(#"{"a":""#.utf8) + [0xF4, 0x90, 0x80, 0x80] + Array(#""}"#.utf8), notUTF8),
            raw(Array(#"{"a":1}"#.utf8) + [0x80], notUTF8), raw([0xFF], notUTF8), raw([0xFE, 0xFF, 0, 0x7B, 0, 0x7D], notUTF8),
        ]
    }()

    @Test func invalidDocumentsAreRefusedWithTheirReason() {
        for (document, expected, foundationAccepted) in Self.invalidDocuments {
            let label = String(decoding: document.prefix(60), as: UTF8.self).debugDescription
            let error = #expect(throws: ValidationError.self, "\(label)") { try JSONValue.parseObject(document) }
            #expect(error == expected, "\(label)")
            // Which of these Foundation took: the documented behaviour changes, nothing else.
            if case .object? = foundationParse(document) {
                #expect(foundationAccepted, "Foundation accepted \(label)")
            } else {
                #expect(!foundationAccepted, "Foundation refused \(label)")
            }
        }
    }

    @Test func depthLimitIsSixtyFour() throws {
        #expect(throws: Never.self) { try JSONValue.parseObject(Array(nested(64).utf8)) }
        let error = #expect(throws: ValidationError.self) { try JSONValue.parseObject(Array(nested(65).utf8)) }
        #expect(error?.message == tooDeep)
    }

    /// Random numbers near every edge: the parser must accept exactly what Foundation
    /// accepts and give the same bits.
    @Test func numbersMatchFoundationBitForBit() throws {
        var rng = SplitMix64(seed: 0x4E55_4D42)
        var cases = ["0e4", "0E9", "0e0", "0e12", "-0e4", "0", "-0", "0.0", "1e308", "1.8e308", "1e-323", "2.4703282292062328e-324", "2.4703282292062327e-324"]
        for _ in 0..<5000 {
            var s = Bool.random(using: &rng) ? "-" : ""
            let first = Int.random(in: 0...9, using: &rng)
            s += String(first)
            if first != 0 { for _ in 0..<Int.random(in: 0...22, using: &rng) { s += String(Int.random(in: 0...9, using: &rng)) } }
            if Bool.random(using: &rng) {
                s += "."
                for _ in 0..<Int.random(in: 1...22, using: &rng) { s += String(Int.random(in: 0...9, using: &rng)) }
            }
            if Bool.random(using: &rng) {
                s += ["e", "E"].randomElement(using: &rng)! + ["", "+", "-"].randomElement(using: &rng)!
                s += String(Int.random(in: 0...350, using: &rng))
            }
            cases.append(s)
        }
        for number in cases {
            let bytes = Array("{\"n\":\(number)}".utf8)
            if isFoundationZeroExponentQuirk(number) {
                #expect(foundationParse(bytes) == nil)
                #expect(try JSONValue.parseObject(bytes) == ["n": .number(0)])
                continue
            }
            let reference = foundationParse(bytes)
            let ours = try? JSONValue.parseObject(bytes)
            #expect(ours.map { isIdentical(.object($0), reference ?? .null) } ?? (reference == nil), "\(number)")
        }
    }

    /// Random documents written with random spacing and escapes parse as Foundation parses them.
    @Test func randomDocumentsMatchFoundation() throws {
        var rng = SplitMix64(seed: 0x5241_4E44)
        for _ in 0..<1500 {
            var text = ""
            writeRandomObject(depth: 0, into: &text, using: &rng)
            let bytes = Array(text.utf8)
            let reference = try #require(foundationParse(bytes), "\(text)")
            let ours = try JSONValue.parseObject(bytes)
            #expect(isIdentical(.object(ours), reference), "\(text)")
        }
    }

    @Test func utf8ValidationMatchesTheStandardLibrary() {
        var rng = SplitMix64(seed: 0x5554_4638)
        let interesting: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xA0, 0x9F, 0xED, 0xEF, 0xF0, 0x90, 0x8F, 0xF4, 0xF5, 0xFF]
        var inputs: [[UInt8]] = [[], Array("plain ascii longer than eight bytes".utf8), Array("é😀€".utf8)]
        for _ in 0..<20000 {
            let count = Int.random(in: 1...20, using: &rng)
            inputs.append((0..<count).map { _ in
                Bool.random(using: &rng) ? interesting.randomElement(using: &rng)! : UInt8.random(in: 0...255, using: &rng)
            })
        }
        for _ in 0..<2000 {  // valid text with one byte changed, past the 8-byte fast path
            var bytes = Array("abcdefghij é😀€ klmnop\u{10FFFF}".utf8)
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            inputs.append(bytes)
        }
        for bytes in inputs {
            let ours = bytes.withUnsafeBufferPointer(UTF8Validation.isValid)
            #expect(ours == (String(validating: bytes, as: UTF8.self) != nil), "\(bytes)")
        }
    }
}

// MARK: Random documents

private func writeRandomValue(depth: Int, into text: inout String, using rng: inout SplitMix64) {
    let choice = Int.random(in: 0..<(depth < 4 ? 8 : 6), using: &rng)
    switch choice {
    case 0: text += "null"
    case 1: text += Bool.random(using: &rng) ? "true" : "false"
    case 2: text += ["0", "-0", "12", "-3.25", "1e3", "6.02E23", "123456789012345678", "0.1", "-7e-5"].randomElement(using: &rng)!
    case 3: text += String(Int64.random(in: -1_000_000_000...1_000_000_000, using: &rng))
    case 4, 5: writeRandomString(into: &text, using: &rng)
    case 6: writeRandomObject(depth: depth + 1, into: &text, using: &rng)
    default:
        text += "["
        for i in 0..<Int.random(in: 0...4, using: &rng) {
            if i > 0 { text += randomSpace(&rng) + "," }
            text += randomSpace(&rng)
            writeRandomValue(depth: depth + 1, into: &text, using: &rng)
        }
        text += randomSpace(&rng) + "]"
    }
}

private func writeRandomObject(depth: Int, into text: inout String, using rng: inout SplitMix64) {
    text += randomSpace(&rng) + "{"
    var keys = Set<String>()
    for _ in 0..<Int.random(in: 0...5, using: &rng) { keys.insert(rng.string(maxPieces: 3)) }
    for (i, key) in keys.enumerated() {
        if i > 0 { text += "," }
        text += randomSpace(&rng)
        writeQuoted(key, into: &text, using: &rng)
        text += randomSpace(&rng) + ":" + randomSpace(&rng)
        writeRandomValue(depth: depth, into: &text, using: &rng)
        text += randomSpace(&rng)
    }
    text += "}" + randomSpace(&rng)
}

private func writeRandomString(into text: inout String, using rng: inout SplitMix64) {
    writeQuoted(Bool.random(using: &rng) ? rng.string() : trickyStrings.randomElement(using: &rng)!, into: &text, using: &rng)
}

/// Quotes `value`, escaping what must be escaped and, at random, other characters too
/// (`\/`, `\uXXXX` in either case, surrogate pairs).
private func writeQuoted(_ value: String, into text: inout String, using rng: inout SplitMix64) {
    text += "\""
    for scalar in value.unicodeScalars {
        let mustEscape = scalar.value < 0x20 || scalar == "\"" || scalar == "\\"
        guard mustEscape || Int.random(in: 0..<5, using: &rng) == 0 else {
            text.unicodeScalars.append(scalar)
            continue
        }
        switch (scalar, Bool.random(using: &rng)) {
        case ("\"", true): text += "\\\""
        case ("\\", true): text += "\\\\"
        case ("/", true): text += "\\/"
        case ("\n", true): text += "\\n"
        case ("\u{8}", true): text += "\\b"
        default:
            let upper = Bool.random(using: &rng)
            for unit in String(scalar).utf16 {
                let hex = String(unit, radix: 16, uppercase: upper)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
    }
    text += "\""
}

private func randomSpace(_ rng: inout SplitMix64) -> String {
    ["", "", "", " ", "\n", "\t", "\r\n  "].randomElement(using: &rng)!
}
