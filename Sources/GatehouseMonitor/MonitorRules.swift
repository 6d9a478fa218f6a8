import Foundation
import GatehouseCore

/// What to do when a condition starts or clears.
public enum MonitorAction: String, Sendable, Hashable, CaseIterable {
    /// A structured log line (warning when it fires, notice when it clears).
    case log
    /// An HTTP POST of the event as JSON to the configured webhook.
    case webhook
    /// `MonitorEventSink.publish` (the bus, once the lead plugs it in).
    case bus
}

/// One watched condition and its actions.
public struct MonitorRule: Sendable, Hashable {
    public enum Condition: Sendable, Hashable {
        /// EMM bit rate (TS bytes on EMM PIDs, or on `pid`) below `bitsPerSecond`.
        case bitRateBelow(bitsPerSecond: Double, pid: UInt16?)
        /// EMM bit rate above `bitsPerSecond`.
        case bitRateAbove(bitsPerSecond: Double, pid: UInt16?)
        /// No EMM section (on any EMM PID, or on `pid`) for `forSeconds`.
        case noEMM(pid: UInt16?)
        /// More than `threshold` decrypt/authentication failures within `windowSeconds`.
        case decryptFailures(threshold: Int)
        /// More than `threshold` CRC errors within `windowSeconds`.
        case crcErrors(threshold: Int)
        /// More than `threshold` continuity errors within `windowSeconds`.
        case continuityErrors(threshold: Int)
        /// An authenticated EMM for `deviceID` (of `kind`, if given) was seen in the last `forSeconds`.
        case deviceEMMSeen(deviceID: String, kind: String?)
        /// The built-in budget guard: EMM bit rate at or above the warning share of the allocation.
        case budget(bitsPerSecond: Double)

        /// The `when` name in the rules file.
        public var typeName: String {
            switch self {
            case .bitRateBelow: "emm_bitrate_below"
            case .bitRateAbove: "emm_bitrate_above"
            case .noEMM: "no_emm"
            case .decryptFailures: "decrypt_failures"
            case .crcErrors: "crc_errors"
            case .continuityErrors: "continuity_errors"
            case .deviceEMMSeen: "device_emm_seen"
            case .budget: "emm_budget"
            }
        }
    }

    public var name: String
    public var condition: Condition
    /// How long the condition must hold before it fires (rates), or the silence (`no_emm`),
    /// or how long a device's EMM stays "seen" (`device_emm_seen`).
    public var forSeconds: Double
    /// The window errors are counted over, and rates measured over.
    public var windowSeconds: Double
    /// For rate conditions: the margin (fraction of the threshold) the rate must cross back
    /// before the condition clears, so a rate hovering at the threshold does not flap.
    public var hysteresis: Double
    public var actions: Set<MonitorAction>

    public init(
        name: String, condition: Condition, forSeconds: Double = 0, windowSeconds: Double = 10,
        hysteresis: Double = 0.05, actions: Set<MonitorAction> = [.log, .bus]
    ) {
        self.name = name
        self.condition = condition
        self.forSeconds = forSeconds
        self.windowSeconds = windowSeconds
        self.hysteresis = hysteresis
        self.actions = actions
    }
}

/// Where webhooks go and how hard to try.
public struct WebhookSettings: Sendable, Hashable {
    public var url: String
    /// Per attempt. Default 2 s.
    public var timeoutSeconds: Double = 2
    /// Attempts in all (first try included). Default 4.
    public var attempts: Int = 4
    /// Delay before the first retry; doubles each retry. Default 0.5 s.
    public var backoffSeconds: Double = 0.5

    public init(url: String, timeoutSeconds: Double = 2, attempts: Int = 4, backoffSeconds: Double = 0.5) {
        self.url = url
        self.timeoutSeconds = timeoutSeconds
        self.attempts = attempts
        self.backoffSeconds = backoffSeconds
    }
}

/// The conditions and actions of `GATEHOUSE_MONITOR_RULES_FILE` (syntax in docs/monitor.md).
public struct MonitorRules: Sendable, Hashable {
    public var rules: [MonitorRule]
    public var webhook: WebhookSettings?

    public init(rules: [MonitorRule] = [], webhook: WebhookSettings? = nil) {
        self.rules = rules
        self.webhook = webhook
    }

    /// Parses the JSON rules file.
    /// - Throws: `GatehouseError(.configuration)` naming `origin` and the rule and field at fault.
    public init(json data: Data, origin: String = "rules") throws {
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch {
            throw GatehouseError(.configuration, "\(origin): not valid JSON")
        }
        guard let object = root as? [String: Any] else {
            throw GatehouseError(.configuration, "\(origin): expected a JSON object with \"rules\"")
        }
        for key in object.keys where !["rules", "webhook"].contains(key) {
            throw GatehouseError(.configuration, "\(origin): unknown key \"\(key)\" (expected rules, webhook)")
        }
        var webhook: WebhookSettings?
        if let hook = object["webhook"] {
            guard let hook = hook as? [String: Any], let url = hook["url"] as? String else {
                throw GatehouseError(.configuration, "\(origin): webhook needs a \"url\"")
            }
            guard (try? HTTPURL(parsing: url)) != nil else {
                throw GatehouseError(.configuration, "\(origin): webhook.url \(url): expected http://HOST:PORT/PATH")
            }
            var settings = WebhookSettings(url: url)
            if let v = hook["timeout_seconds"] as? Double, v > 0 { settings.timeoutSeconds = v }
            if let v = hook["attempts"] as? Int, v >= 1, v <= 20 { settings.attempts = v }
            if let v = hook["backoff_seconds"] as? Double, v >= 0 { settings.backoffSeconds = v }
            webhook = settings
        }
        guard let list = object["rules"] as? [[String: Any]] else {
            throw GatehouseError(.configuration, "\(origin): \"rules\" must be an array of objects")
        }
        var rules: [MonitorRule] = []
        var names = Set<String>()
        for (index, entry) in list.enumerated() {
            let name = entry["name"] as? String ?? "rule\(index + 1)"
            let here = "\(origin): rule \(name)"
            guard names.insert(name).inserted else { throw GatehouseError(.configuration, "\(here): duplicate name") }
            guard let when = entry["when"] as? String else {
                throw GatehouseError(.configuration, "\(here): missing \"when\"")
            }
            func number(_ key: String) throws -> Double? {
                guard let value = entry[key] else { return nil }
                guard let n = value as? Double ?? (value as? Int).map(Double.init), n >= 0, n.isFinite else {
                    throw GatehouseError(.configuration, "\(here): \(key) must be a number, zero or more")
                }
                return n
            }
            func required(_ key: String) throws -> Double {
                guard let n = try number(key) else { throw GatehouseError(.configuration, "\(here): missing \(key)") }
                return n
            }
            var pid: UInt16?
            if let p = entry["pid"] {
                let text = (p as? String) ?? (p as? Int).map(String.init) ?? ""
                guard let parsed = MonitorConfiguration.parsePID(text) else {
                    throw GatehouseError(.configuration, "\(here): pid must be 0...8190 (number or \"0x…\")")
                }
                pid = parsed
            }
            let condition: MonitorRule.Condition
            var forSeconds = try number("for_seconds")
            switch when {
            case "emm_bitrate_below":
                condition = .bitRateBelow(bitsPerSecond: try required("threshold"), pid: pid)
                forSeconds = forSeconds ?? 10
            case "emm_bitrate_above":
                condition = .bitRateAbove(bitsPerSecond: try required("threshold"), pid: pid)
                forSeconds = forSeconds ?? 10
            case "no_emm":
                condition = .noEMM(pid: pid)
                forSeconds = forSeconds ?? 30
            case "decrypt_failures": condition = .decryptFailures(threshold: Int(try number("threshold") ?? 0))
            case "crc_errors": condition = .crcErrors(threshold: Int(try number("threshold") ?? 0))
            case "continuity_errors": condition = .continuityErrors(threshold: Int(try number("threshold") ?? 0))
            case "device_emm_seen":
                guard let device = entry["device"] as? String, !device.isEmpty else {
                    throw GatehouseError(.configuration, "\(here): device_emm_seen needs \"device\"")
                }
                let kind = entry["kind"] as? String
                if let kind, !["entitlement_add", "entitlement_cancel", "osm", "key_update"].contains(kind) {
                    throw GatehouseError(
                        .configuration,
                        "\(here): kind \(kind) is not one of entitlement_add, entitlement_cancel, osm, key_update")
                }
                condition = .deviceEMMSeen(deviceID: device, kind: kind)
                forSeconds = forSeconds ?? 60
            default:
                throw GatehouseError(
                    .configuration,
                    "\(here): unknown condition \(when) (emm_bitrate_below, emm_bitrate_above, no_emm, "
                        + "decrypt_failures, crc_errors, continuity_errors, device_emm_seen)")
            }
            var actions: Set<MonitorAction> = [.log, .bus]
            if let given = entry["actions"] {
                guard let names = given as? [String] else {
                    throw GatehouseError(.configuration, "\(here): actions must be an array of strings")
                }
                actions = []
                for a in names {
                    guard let action = MonitorAction(rawValue: a) else {
                        throw GatehouseError(.configuration, "\(here): unknown action \(a) (log, webhook, bus)")
                    }
                    actions.insert(action)
                }
            }
            if actions.contains(.webhook) && webhook == nil {
                throw GatehouseError(
                    .configuration, "\(here): action webhook needs a top-level \"webhook\": {\"url\": …}")
            }
            let window = try number("window_seconds") ?? 10
            guard window >= 1, window <= 3600 else {
                throw GatehouseError(.configuration, "\(here): window_seconds must be 1...3600")
            }
            rules.append(
                MonitorRule(
                    name: name, condition: condition, forSeconds: forSeconds ?? 0,
                    windowSeconds: window, hysteresis: try number("hysteresis") ?? 0.05, actions: actions))
        }
        self.init(rules: rules, webhook: webhook)
    }
}

/// A condition that started or cleared: what actions receive.
public struct MonitorEvent: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case fired
        case cleared
    }

    /// The rule's name.
    public var rule: String
    /// The condition type (`emm_bitrate_below`, …).
    public var condition: String
    public var state: State
    /// The measured value when it changed (bit/s, error count, seconds of silence…).
    public var value: Double
    /// Unix time (seconds) of the change.
    public var time: Double
    /// Context: `pid`, `device.id`, `group`, `instance` (never key material).
    public var labels: [String: String]

    public init(
        rule: String, condition: String, state: State, value: Double, time: Double,
        labels: [String: String] = [:]
    ) {
        self.rule = rule
        self.condition = condition
        self.state = state
        self.value = value
        self.time = time
        self.labels = labels
    }

    /// The webhook body: one flat JSON object.
    public func jsonBody() -> String {
        var object = labels
        object["rule"] = rule
        object["condition"] = condition
        object["state"] = state.rawValue
        object["value"] = MetricsText.format(value)
        object["time"] = String(format: "%.3f", time)
        return JSONLine.encode(object)
    }
}

/// Where `bus` actions go. The lead plugs the command bus in; tests use a collector.
public protocol MonitorEventSink: Sendable {
    /// Publishes one condition change. A thrown error is logged; the event is not retried.
    func publish(_ event: MonitorEvent) async throws
}
