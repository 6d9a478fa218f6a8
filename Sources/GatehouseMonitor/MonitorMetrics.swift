import GatehouseCore
import GatehouseTS

/// Number formatting for the text exposition and event bodies.
enum MetricsText {
    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value.rounded() == value, abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}

/// Metric names (Prometheus conventions: base units, `_total` counters, `_bytes_total`).
/// The list with meanings is in docs/monitor.md; keep the two together.
enum MonitorMetricName {
    static let prefix = "gatehouse_monitor_"
    // Rates in bytes per second: promtool rejects "bits" (not a base unit). Multiply by 8
    // for bit/s; GATEHOUSE_EMM_BITRATE, rule thresholds and event values stay in bit/s.
    static let emmBitRate = prefix + "emm_bytes_per_second"
    static let emmTotalBitRate = prefix + "emm_total_bytes_per_second"
    static let emmTableBitRate = prefix + "emm_table_bytes_per_second"
    static let emmClassBitRate = prefix + "emm_class_bytes_per_second"
    static let emmKindBitRate = prefix + "emm_kind_bytes_per_second"
    static let emmBudget = prefix + "emm_budget_bytes_per_second"
    static let emmBudgetRatio = prefix + "emm_budget_ratio"
    static let emmPackets = prefix + "emm_packets_total"
    static let emmBytes = prefix + "emm_bytes_total"
    static let emmSections = prefix + "emm_sections_total"
    static let emmTableSections = prefix + "emm_table_sections_total"
    static let emmTableBytes = prefix + "emm_table_section_bytes_total"
    static let crcErrors = prefix + "crc_errors_total"
    static let malformedSections = prefix + "malformed_sections_total"
    static let continuityErrors = prefix + "continuity_errors_total"
    static let tsPackets = prefix + "ts_packets_total"
    static let syncErrors = prefix + "sync_errors_total"
    static let transportErrors = prefix + "transport_errors_total"
    static let duplicatePackets = prefix + "duplicate_packets_total"
    static let datagrams = prefix + "datagrams_total"
    static let datagramBytes = prefix + "datagram_bytes_total"
    static let rtpLost = prefix + "rtp_lost_datagrams_total"
    static let rtpOutOfOrder = prefix + "rtp_out_of_order_datagrams_total"
    static let kernelDrops = prefix + "kernel_dropped_datagrams_total"
    static let truncated = prefix + "truncated_datagrams_total"
    static let catSections = prefix + "cat_sections_total"
    static let emmPIDs = prefix + "emm_pids"
    static let decrypt = prefix + "emm_decrypt_total"
    static let keys = prefix + "keys"
    static let conditionActive = prefix + "condition_active"
    static let conditionTransitions = prefix + "condition_transitions_total"
}

extension MonitorCore {
    /// Copies the core's counters and rates into `registry` (called by a registry
    /// collector just before rendering, so the hot path never touches the registry).
    public func publishMetrics(into registry: MetricsRegistry, at now: UInt64) {
        typealias N = MonitorMetricName
        let long = Double(settings.windowSeconds)
        let windows: [(String, Double)] = [("1s", 1), ("\(settings.windowSeconds)s", long)]
        for pid in emmPIDs {
            let label = PIDLabel.text(pid)
            for (name, seconds) in windows {
                registry.gauge(
                    N.emmBitRate, help: "EMM bandwidth per PID: TS bytes (188 per packet) on the PID per second",
                    labels: [("pid", label), ("window", name)]
                ).set(emmBitRate(pid: pid, seconds: seconds, at: now) / 8)
            }
            let c = emmCounters[pid] ?? PIDCounters()
            registry.counter(N.emmPackets, help: "TS packets on EMM PIDs", labels: [("pid", label)]).set(
                Double(c.packets))
            registry.counter(N.emmBytes, help: "TS bytes on EMM PIDs (188 per packet)", labels: [("pid", label)])
                .set(Double(c.bytes))
            registry.counter(
                N.emmSections, help: "EMM sections delivered (CRC right) per PID", labels: [("pid", label)]
            )
            .set(Double(c.sections))
            registry.counter(
                N.crcErrors, help: "Long-form sections with a wrong CRC-32 per PID", labels: [("pid", label)]
            )
            .set(Double(c.crcErrors))
            registry.counter(
                N.malformedSections, help: "Section bytes dropped as malformed per PID",
                labels: [("pid", label)]
            ).set(Double(c.malformedSections))
        }
        for (name, seconds) in windows {
            registry.gauge(
                N.emmTotalBitRate, help: "EMM bandwidth of all EMM PIDs together, bytes per second",
                labels: [("window", name)]
            ).set(emmBitRate(seconds: seconds, at: now) / 8)
            for table in tableIDs {
                registry.gauge(
                    N.emmTableBitRate, help: "EMM section bytes per second per table_id",
                    labels: [("table_id", PIDLabel.table(table)), ("window", name)]
                )
                .set(tableBitRate(table, seconds: seconds, at: now) / 8)
            }
            for cls in classNames {
                registry.gauge(
                    N.emmClassBitRate, help: "EMM section bytes per second per addressing class",
                    labels: [("class", cls), ("window", name)]
                ).set(classBitRate(cls, seconds: seconds, at: now) / 8)
            }
            for kind in kindNames {
                registry.gauge(
                    N.emmKindBitRate,
                    help: "EMM section bytes per second per payload kind (unknown unless decrypted)",
                    labels: [("kind", kind), ("window", name)]
                ).set(kindBitRate(kind, seconds: seconds, at: now) / 8)
            }
        }
        registry.gauge(N.emmBudget, help: "Allocated EMM bandwidth (GATEHOUSE_EMM_BITRATE / 8), bytes per second")
            .set(Double(settings.emmBitRate) / 8)
        registry.gauge(N.emmBudgetRatio, help: "EMM bandwidth over the long window divided by the allocation")
            .set(emmBitRate(seconds: long, at: now) / Double(max(1, settings.emmBitRate)))
        for table in tableIDs {
            let label = [("table_id", PIDLabel.table(table))]
            registry.counter(N.emmTableSections, help: "EMM sections per table_id", labels: label)
                .set(Double(sectionsByTable[table] ?? 0))
            registry.counter(N.emmTableBytes, help: "EMM section bytes per table_id", labels: label)
                .set(Double(sectionBytesByTable[table] ?? 0))
        }
        for (pid, count) in continuityErrorsByPID.sorted(by: { $0.key < $1.key }) {
            registry.counter(
                N.continuityErrors, help: "Continuity counter errors per PID",
                labels: [("pid", PIDLabel.text(pid))]
            ).set(Double(count))
        }
        for (pid, count) in packetsPerPID.sorted(by: { $0.key < $1.key }) {
            registry.counter(N.tsPackets, help: "TS packets received per PID", labels: [("pid", PIDLabel.text(pid))])
                .set(Double(count))
        }
        let stats = demuxStatistics
        registry.counter(N.syncErrors, help: "TS packets without the 0x47 sync byte").set(Double(stats.syncErrors))
        registry.counter(N.transportErrors, help: "TS packets with transport_error_indicator set")
            .set(Double(stats.transportErrors))
        registry.counter(N.duplicatePackets, help: "Legal duplicate TS packets (payload ignored)")
            .set(Double(stats.duplicatePackets))
        registry.counter(N.datagrams, help: "UDP datagrams by encapsulation", labels: [("encapsulation", "raw_ts")])
            .set(Double(datagramsRaw))
        registry.counter(N.datagrams, help: "UDP datagrams by encapsulation", labels: [("encapsulation", "rtp")])
            .set(Double(datagramsRTP))
        registry.counter(N.datagrams, help: "UDP datagrams by encapsulation", labels: [("encapsulation", "rejected")])
            .set(Double(datagramsRejected))
        registry.counter(N.datagramBytes, help: "UDP payload bytes received").set(Double(datagramBytes))
        registry.counter(N.rtpLost, help: "RTP datagrams missing from the sequence numbers").set(
            Double(rtp.lostDatagrams))
        registry.counter(N.rtpOutOfOrder, help: "RTP datagrams duplicated or late").set(Double(rtp.outOfOrderDatagrams))
        registry.counter(N.kernelDrops, help: "Datagrams the kernel dropped on the socket (SO_RXQ_OVFL)")
            .set(Double(kernelDrops))
        registry.counter(N.truncated, help: "Datagrams larger than the receive buffer").set(Double(truncatedDatagrams))
        registry.counter(N.catSections, help: "CAT sections received").set(Double(catSections))
        registry.gauge(N.emmPIDs, help: "EMM PIDs watched (configured and from the CAT)").set(Double(emmPIDs.count))
        for outcome in DecryptOutcome.allCases {
            registry.counter(
                N.decrypt, help: "EMM sections on EMM PIDs by decryption outcome",
                labels: [("result", outcome.rawValue)]
            ).set(Double(count(outcome)))
        }
        registry.gauge(N.keys, help: "Device keys the monitor holds").set(Double(keyring.count))
        for state in conditionStates {
            let name = [("rule", state.rule.name)]
            registry.gauge(N.conditionActive, help: "1 while the condition holds", labels: name)
                .set(state.isActive ? 1 : 0)
            registry.counter(N.conditionTransitions, help: "Condition changes", labels: name + [("state", "fired")])
                .set(Double(state.fired))
            registry.counter(N.conditionTransitions, help: "Condition changes", labels: name + [("state", "cleared")])
                .set(Double(state.cleared))
        }
    }

    /// The text exposition of this core alone (tests, benchmarks, `analyze`-like tools).
    public func metricsText(at now: UInt64) -> String {
        let registry = MetricsRegistry()
        publishMetrics(into: registry, at: now)
        return registry.render()
    }
}
