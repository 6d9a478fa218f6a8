import Synchronization

/// A Prometheus metric family type.
public enum MetricType: String, Sendable {
    case counter, gauge
}

/// One time series: a value that only goes up (`counter`) or that is set (`gauge`).
/// Safe to update from any thread.
public final class MetricSeries: Sendable {
    private let value = Mutex<Double>(0)
    public init() {}
    public func increment(by amount: Double = 1) { value.withLock { $0 += amount } }
    public func set(_ newValue: Double) { value.withLock { $0 = newValue } }
    public var current: Double { value.withLock { $0 } }
}

/// The counters of one family that differ by one label (responses by status code,
/// requests by kind), each looked up in the registry once and then kept here: for hot
/// paths, where building the label text on every event would cost more than the count.
public final class LabeledCounters<Value: Hashable & Sendable & CustomStringConvertible>: Sendable {
    private let registry: MetricsRegistry
    private let name: String
    private let help: String
    private let label: String
    private let cache = Mutex<[Value: MetricSeries]>([:])

    public init(_ registry: MetricsRegistry, _ name: String, help: String, label: String) {
        self.registry = registry
        self.name = name
        self.help = help
        self.label = label
    }

    /// The series for `value`, made on first use.
    public func callAsFunction(_ value: Value) -> MetricSeries {
        cache.withLock { cache in
            if let known = cache[value] { return known }
            let series = registry.counter(name, help: help, labels: [(label, value.description)])
            cache[value] = series
            return series
        }
    }
}

/// Metrics in the Prometheus text exposition format (version 0.0.4). Asking twice for
/// the same name and labels returns the same series, so call sites can look them up
/// lazily; label text is rendered once, when the series is made.
public final class MetricsRegistry: Sendable {
    private struct Family {
        var type: MetricType
        var help: String
        var series: [String: MetricSeries] = [:]
        var order: [String] = []
    }

    private let families = Mutex<[String: Family]>([:])
    private let collectors = Mutex<[@Sendable () -> Void]>([])

    public init() {}

    public func counter(_ name: String, help: String, labels: [(String, String)] = []) -> MetricSeries {
        series(name, type: .counter, help: help, labels: labels)
    }

    public func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> MetricSeries {
        series(name, type: .gauge, help: help, labels: labels)
    }

    /// Registers a closure run before each rendering (to refresh gauges from state).
    public func addCollector(_ collect: @escaping @Sendable () -> Void) { collectors.withLock { $0.append(collect) } }

    private func series(_ name: String, type: MetricType, help: String, labels: [(String, String)]) -> MetricSeries {
        let labelText = labels.isEmpty
            ? "" : "{" + labels.map { "\($0.0)=\"\(Self.escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
        return families.withLock { families in
            var family = families[name] ?? Family(type: type, help: help)
            if let existing = family.series[labelText] { return existing }
            let created = MetricSeries()
            family.series[labelText] = created
            family.order.append(labelText)
            families[name] = family
            return created
        }
    }

    /// The whole exposition, families sorted by name.
    public func render() -> String {
        for collect in collectors.withLock({ $0 }) { collect() }
        let snapshot = families.withLock { $0 }
        var out = ""
        for name in snapshot.keys.sorted() {
            let family = snapshot[name]!
            out += "# HELP \(name) \(family.help)\n# TYPE \(name) \(family.type.rawValue)\n"
            for labels in family.order {
                out += "\(name)\(labels) \(Self.format(family.series[labels]!.current))\n"
            }
        }
        return out
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func escapeLabel(_ value: String) -> String {
        var out = ""
        for c in value {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }
}
