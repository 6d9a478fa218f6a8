import Foundation
import GatehouseCore

/// Pushes the monitor's exposition to a Prometheus Pushgateway under the grouping key
/// (job, instance, group), and deletes that group on graceful shutdown so a stopped
/// monitor does not leave its last figures behind as if they were live.
///
/// URL: `<base>/metrics/job/<job>/instance/<instance>/group/<group>`. A label value
/// that contains `/` or `:` (a multicast `ADDR:PORT` does) is written as
/// `group@base64/<base64url of the value>`, as the Pushgateway documents; other values
/// are percent-encoded.
///
/// PUT replaces every metric of the group at each push, so series that disappear from
/// the monitor (a PID gone from the CAT) disappear from the Pushgateway too.
public struct PushgatewayPusher: Sendable {
    public var baseURL: HTTPURL
    public var job: String
    public var instance: String
    public var group: String
    public var timeoutSeconds: Double
    public var attempts: Int
    public var backoffSeconds: Double

    public init(
        baseURL: HTTPURL, job: String, instance: String, group: String, timeoutSeconds: Double = 2,
        attempts: Int = 3, backoffSeconds: Double = 0.25
    ) {
        self.baseURL = baseURL
        self.job = job
        self.instance = instance
        self.group = group
        self.timeoutSeconds = timeoutSeconds
        self.attempts = max(1, attempts)
        self.backoffSeconds = backoffSeconds
    }

    /// The grouping-key path (without the base URL's own path prefix).
    public var groupingPath: String {
        var base = baseURL.path
        while base.hasSuffix("/") { base.removeLast() }
        return base + "/metrics" + Self.segment("job", job) + Self.segment("instance", instance)
            + Self.segment("group", group)
    }

    /// `/name/value`, or `/name@base64/…` when the value has `/` or `:` (or is empty).
    static func segment(_ name: String, _ value: String) -> String {
        if value.isEmpty || value.contains("/") || value.contains(":") {
            let b64 = Data(value.utf8).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            return "/\(name)@base64/\(b64.isEmpty ? "=" : b64)"
        }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return "/\(name)/\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
    }

    /// PUTs `exposition` (text format 0.0.4).
    /// - Throws: `GatehouseError` after the last attempt (transport error or non-2xx status).
    public func push(_ exposition: String, onRetry: @Sendable (Int, String) -> Void = { _, _ in }) async throws {
        let response = try await HTTPClient.sendWithRetries(
            "PUT", baseURL.with(path: groupingPath),
            body: Array(exposition.utf8), contentType: "text/plain; version=0.0.4; charset=utf-8",
            timeout: timeoutSeconds, attempts: attempts, backoff: backoffSeconds, onRetry: onRetry)
        guard (200..<300).contains(response.status) else {
            throw GatehouseError(
                .unavailable,
                "Pushgateway PUT \(groupingPath) answered \(response.status): \(response.text.prefix(200))")
        }
    }

    /// DELETEs the group (every metric pushed under this grouping key).
    public func delete() async throws {
        let response = try await HTTPClient.sendWithRetries(
            "DELETE", baseURL.with(path: groupingPath),
            timeout: timeoutSeconds, attempts: attempts, backoff: backoffSeconds)
        guard (200..<300).contains(response.status) else {
            throw GatehouseError(.unavailable, "Pushgateway DELETE \(groupingPath) answered \(response.status)")
        }
    }
}
