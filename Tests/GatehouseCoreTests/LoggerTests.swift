import Foundation
import GatehouseCore
import Testing

private func decode(_ line: String) throws -> [String: String] {
    let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
    return try #require(object as? [String: String])
}

@Suite("Structured log lines")
struct LoggerTests {
    /// Every escape class, multi-byte UTF-8 and runs between escapes; JSONSerialization
    /// is the independent reader.
    @Test(arguments: [
        "", "plain", #"quote " inside"#, #"back\slash"#, "new\nline", "cr\rtab\t", "nul\u{0}bell\u{7}esc\u{1B}",
        "\u{1F}\u{20}\u{7F}", "é ü 中文 🎛️", #"mix "a"\b\n"#, "slash / stays",
    ])
    func quoteRoundTrips(_ text: String) throws {
        let quoted = JSONLine.quote(text)
        let back = try JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed)
        #expect(back as? String == text)
        #expect(!quoted.utf8.dropFirst().dropLast().contains { $0 < 0x20 }, "no raw control byte in \(quoted)")
    }

    @Test func quoteUsesShortEscapesAndLowercaseHex() {
        #expect(JSONLine.quote("a\"b\\c\nd\re\tf\u{1}") == #""a\"b\\c\nd\re\tf\u0001""#)
        #expect(JSONLine.quote("\u{1F}") == #""\u001f""#)
    }

    @Test func encodePutsHeadFieldsFirstThenSortedKeys() {
        let line = JSONLine.encode(["zeta": "1", "msg": "m", "alpha": "2", "ts": "t", "label": "l", "level": "info"])
        #expect(line == #"{"ts":"t","level":"info","label":"l","msg":"m","alpha":"2","zeta":"1"}"#)
        #expect(JSONLine.encode([:]) == "{}")
    }

    @Test func loggerMergesMetadataAndKeepsHeadFields() throws {
        let sink = MemorySink()
        let logger = Logger(label: "test", minimumLevel: .info, sink: sink, metadata: ["service": "api", "shared": "base"])
        logger.info("hello", ["shared": "extra", "msg": "cannot override", "k": "v\n"])
        logger.debug("dropped")
        #expect(sink.lines.count == 1)
        let fields = try decode(try #require(sink.lines.first))
        #expect(fields["msg"] == "hello")
        #expect(fields["level"] == "info")
        #expect(fields["label"] == "test")
        #expect(fields["service"] == "api")
        #expect(fields["shared"] == "extra")
        #expect(fields["k"] == "v\n")
        #expect(sink.lines[0].hasPrefix(#"{"ts":""#))
    }

    @Test func timestampIsUTCMillisecondsAndNow() throws {
        let sink = MemorySink()
        let before = Date()
        Logger(label: "t", sink: sink).notice("x")
        let after = Date()
        let ts = try #require(try decode(sink.lines[0])["ts"])
        #expect(ts.utf8.count == 24)
        #expect(ts.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let parsed = try #require(formatter.date(from: ts))
        #expect(parsed.timeIntervalSince(before) > -0.002)
        #expect(after.timeIntervalSince(parsed) > -0.002)
    }
}

@Suite("Metrics")
struct MetricsTests {
    @Test func labeledCountersShareTheRegistrySeries() {
        let registry = MetricsRegistry()
        let byKind = LabeledCounters<String>(registry, "demo_requests_total", help: "Demo", label: "kind")
        byKind("a").increment()
        byKind("a").increment()
        byKind("b \"quoted\"").increment(by: 3)
        #expect(byKind("a") === registry.counter("demo_requests_total", help: "Demo", labels: [("kind", "a")]))
        #expect(byKind("a").current == 2)
        let text = registry.render()
        #expect(text.contains("# TYPE demo_requests_total counter"))
        #expect(text.contains(#"demo_requests_total{kind="a"} 2"#))
        #expect(text.contains(#"demo_requests_total{kind="b \"quoted\""} 3"#))
    }
}
