import GatehouseCore
import Testing

@testable import GatehousePlayout

@Suite("Playout configuration")
struct ConfigurationTests {
    @Test func defaults() throws {
        let c = try PlayoutConfiguration.load(from: ConfigSource(environment: [:]))
        #expect(c.group == SocketAddress(host: "239.255.42.42", port: 5000, family: .ipv4))
        #expect(c.interface == "127.0.0.1")
        #expect(c.ttl == 1)
        #expect(c.bitRate == 100_000)
        #expect(c.emmPID == 0x0100)
        #expect(c.caSystemID == 0x4AE1)
        #expect(c.catIntervalMilliseconds == 500)
        #expect(c.isRTPEnabled == false)
        #expect(c.pollIntervalMilliseconds == 200)
        #expect(c.fill == .earlyRepeats)
        #expect(c.packetsPerDatagram == 7)
        #expect(c == PlayoutConfiguration())
    }

    @Test func parsesEverySetting() throws {
        let c = try PlayoutConfiguration.load(
            from: ConfigSource(environment: [
                "GATEHOUSE_EMM_GROUP": "[ff15::4242]:6000", "GATEHOUSE_MULTICAST_TTL": "4",
                "GATEHOUSE_EMM_BITRATE": "2000000", "GATEHOUSE_EMM_PID": "0x1ABC", "GATEHOUSE_CA_SYSTEM_ID": "0x0B00",
                "GATEHOUSE_CAT_INTERVAL_MS": "250", "GATEHOUSE_RTP": "true", "GATEHOUSE_PLAYOUT_POLL_MS": "50",
                "GATEHOUSE_PLAYOUT_FILL": "null", "GATEHOUSE_PLAYOUT_WRITEBACK_MS": "0",
            ]))
        #expect(c.group == SocketAddress(host: "ff15::4242", port: 6000, family: .ipv6))
        #expect(c.interface == "lo")
        #expect(c.ttl == 4)
        #expect(c.bitRate == 2_000_000)
        #expect(c.emmPID == 0x1ABC)
        #expect(c.caSystemID == 0x0B00)
        #expect(c.catIntervalMilliseconds == 250)
        #expect(c.isRTPEnabled)
        #expect(c.pollIntervalMilliseconds == 50)
        #expect(c.fill == .nullPackets)
        #expect(c.writeBackIntervalMilliseconds == 0)
    }

    @Test(arguments: [
        ("GATEHOUSE_EMM_GROUP", "10.0.0.1:5000"), ("GATEHOUSE_EMM_GROUP", "239.1.1.1"),
        ("GATEHOUSE_EMM_GROUP", "239.1.1.1:0"), ("GATEHOUSE_EMM_GROUP", "example.com:5000"),
        ("GATEHOUSE_MULTICAST_TTL", "256"), ("GATEHOUSE_EMM_BITRATE", "1000"), ("GATEHOUSE_EMM_BITRATE", "fast"),
        ("GATEHOUSE_EMM_PID", "0x1FFF"), ("GATEHOUSE_EMM_PID", "1"), ("GATEHOUSE_CA_SYSTEM_ID", "0x10000"),
        ("GATEHOUSE_CAT_INTERVAL_MS", "1500"), ("GATEHOUSE_RTP", "maybe"), ("GATEHOUSE_PLAYOUT_POLL_MS", "0"),
        ("GATEHOUSE_PLAYOUT_FILL", "zeros"), ("GATEHOUSE_EMM_SOURCE", "::1"),
    ])
    func errorsNameTheSetting(key: String, value: String) {
        do {
            _ = try PlayoutConfiguration.load(from: ConfigSource(environment: [key: value]))
            Issue.record("\(key)=\(value) was accepted")
        } catch let error as GatehouseError {
            #expect(error.code == .configuration)
            #expect(error.message.contains(key))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite("Playout as a service")
struct ServiceConformanceTests {
    @Test func runsUnderServiceRunnerName() {
        let service: any GatehouseService = PlayoutService(
            configuration: PlayoutConfiguration(), source: MemorySource([]), metrics: MetricsRegistry(),
            logger: .disabled)
        #expect(service.name == "playout")
    }
}
