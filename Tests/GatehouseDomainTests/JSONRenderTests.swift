import Foundation
import GatehouseCore
import Testing

@testable import GatehouseDomain
import GatehouseTestSupport

/// `JSONValue.rendered` as it was written before the byte writer, kept verbatim as the
/// reference: API responses and the idempotency digest depend on this exact output.
private func legacyRendered(_ value: JSONValue) -> String {
    switch value {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .number(let n):
        if n.rounded() == n, abs(n) < 1e15 { return String(Int64(n)) }
        return String(n)
    case .string(let s): return JSONLine.quote(s)
    case .array(let items): return "[" + items.map(legacyRendered).joined(separator: ",") + "]"
    case .object(let fields):
        return "{" + fields.keys.sorted().map { JSONLine.quote($0) + ":" + legacyRendered(fields[$0]!) }
            .joined(separator: ",") + "}"
    }
}

private let edgeNumbers: [Double] = [
    0, -0.0, 1, -1, 0.5, -2.25, 1e15 - 1, 1e15, -1e15 + 1, -1e15, 1e16, 123_456_789.125, 1e-7, .leastNonzeroMagnitude, 1e300,
    .greatestFiniteMagnitude, 9_007_199_254_740_994, .infinity, -.infinity, .nan, 0.1 + 0.2,
]

private func randomValue(depth: Int, using rng: inout SplitMix64) -> JSONValue {
    switch Int.random(in: 0..<(depth < 4 ? 8 : 6), using: &rng) {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &rng))
    case 2: return .number(edgeNumbers.randomElement(using: &rng)!)
    case 3: return .number(Double(Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &rng)))
    case 4: return .string(trickyStrings.randomElement(using: &rng)!)
    case 5: return .string(rng.string())
    case 6: return .array((0..<Int.random(in: 0...4, using: &rng)).map { _ in randomValue(depth: depth + 1, using: &rng) })
    default:
        var fields: [String: JSONValue] = [:]
        for _ in 0..<Int.random(in: 0...6, using: &rng) {
            let key = Bool.random(using: &rng) ? rng.string(maxPieces: 3) : ["a", "B", "é", "z", "Z1", "a10", "a2", "_"].randomElement(using: &rng)!
            fields[key] = randomValue(depth: depth + 1, using: &rng)
        }
        return .object(fields)
    }
}

@Suite("rendered writes the same bytes as before")
struct JSONRenderTests {
    @Test func fixedExamples() {
        let value = JSONValue.object([
            "b": .array([.number(1), .number(-0.0), .number(0.5), .number(1e15), .null, .bool(true)]),
            "a": .string("q\"\\/\n\u{1}\u{7F}é"), "B": .object([:]),
        ])
        #expect(value.rendered == #"{"B":{},"a":"q\"\\/\n\u0001"# + "\u{7F}é" + #"","b":[1,0,0.5,1000000000000000.0,null,true]}"#)
        #expect(value.renderedBytes == Array(value.rendered.utf8))
    }

    @Test func matchesTheLegacyRenderingOnRandomValues() {
        var rng = SplitMix64(seed: 0x5245_4E44)
        for number in edgeNumbers {
            #expect(JSONValue.number(number).rendered == legacyRendered(.number(number)), "\(number)")
        }
        for string in trickyStrings { #expect(JSONValue.string(string).rendered == legacyRendered(.string(string))) }
        for _ in 0..<3000 {
            let value = randomValue(depth: 0, using: &rng)
            let expected = legacyRendered(value)
            #expect(value.rendered == expected)
            #expect(value.renderedBytes == Array(expected.utf8))
        }
    }

    /// What `rendered` writes, the parser reads back to the same value (whenever it is JSON:
    /// infinities and NaN render as `inf` and `nan`, as they always did).
    @Test func renderedObjectsParseBack() throws {
        var rng = SplitMix64(seed: 0x4241_434B)
        for _ in 0..<1000 {
            let value = randomValue(depth: 3, using: &rng)
            guard case .object = value, !value.rendered.contains("inf"), !value.rendered.contains("nan") else { continue }
            #expect(try JSONValue.object(JSONValue.parseObject(value.renderedBytes)) == value)
        }
    }
}
