import Foundation
import GatehouseCore
import GatehouseCrypto
import GatehouseEMM
import GatehouseMonitor
import GatehouseSTB
import Synchronization

/// `gatehouse stb`: a virtual set-top box on the EMM multicast group.
public enum STBCommand: Subcommand {
    public static let name = "stb"
    public static let summary = "a virtual set-top box: decrypts its own EMMs and prints what it learns"
    public static let usage = """
        usage: gatehouse stb --device ID (--key HEX | --key-file FILE) [--key-version N] [--group ADDR:PORT]
                             [--interface ADDR] [--emm-pid PID]... [--duration SECONDS] [--json]
          Joins the EMM group (default GATEHOUSE_EMM_GROUP, 239.255.42.42:5000, on GATEHOUSE_MULTICAST_INTERFACE),
          keeps the EMMs addressed to ID, authenticates and decrypts them, refuses replays and forgeries,
          and prints its entitlements and messages as they change; at the end (after --duration, or on
          Ctrl-C) it prints its whole state. --json: one JSON object a line, the last one the state.
        """

    struct Options {
        var deviceID: String?
        var keyHex: String?
        var keyVersion: UInt16 = 1
        var group: String?
        var interface: String?
        var emmPIDs: [UInt16] = []
        var duration: Double?
        var json = false
    }

    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var index = 0
        func value() throws -> String {
            guard index + 1 < arguments.count else { throw UsageError("\(arguments[index]) needs a value") }
            index += 1
            return arguments[index]
        }
        while index < arguments.count {
            switch arguments[index] {
            case "--device": options.deviceID = try value()
            case "--key": options.keyHex = try value()
            case "--key-file":
                let path = try value()
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw UsageError("cannot read the key file \(path)")
                }
                options.keyHex = text.trimmingCharacters(in: .whitespacesAndNewlines)
            case "--key-version":
                guard let v = UInt16(try value()), v > 0 else { throw UsageError("--key-version takes 1 to 65535") }
                options.keyVersion = v
            case "--group": options.group = try value()
            case "--interface": options.interface = try value()
            case "--emm-pid":
                let text = try value()
                let pid = text.hasPrefix("0x") ? UInt16(text.dropFirst(2), radix: 16) : UInt16(text)
                guard let pid, pid < 0x1FFF else { throw UsageError("--emm-pid takes a PID such as 0x0100 or 256") }
                options.emmPIDs.append(pid)
            case "--duration":
                guard let d = Double(try value()), d > 0 else { throw UsageError("--duration takes seconds") }
                options.duration = d
            case "--json": options.json = true
            default: throw UsageError("unknown option \(arguments[index])")
            }
            index += 1
        }
        return options
    }

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        let options = try parse(rest)
        guard let deviceID = options.deviceID else { throw UsageError("--device is required") }
        guard let keyHex = options.keyHex else { throw UsageError("--key or --key-file is required") }
        let key: SymmetricKey
        do { key = try SymmetricKey(hex: keyHex) } catch { throw UsageError("the key must be 32 or 64 hex digits") }
        let group = try MulticastGroup(
            parsing: options.group ?? settings.source.string("GATEHOUSE_EMM_GROUP", default: "239.255.42.42:5000"))
        let interface = options.interface ?? settings.source.string("GATEHOUSE_MULTICAST_INTERFACE", default: "127.0.0.1")
        let receiver = try MulticastReceiver(settings: MulticastReceiverSettings(group: group, interface: interface))
        let box = try VirtualSetTopBox(deviceID: deviceID, key: key, keyVersion: options.keyVersion, emmPIDs: options.emmPIDs)
        let printer = STBPrinter(json: options.json, output: context.standardOutput)
        if !options.json {
            context.standardOutput("stb \(deviceID): listening on \(group) via \(interface), key KCV \(key.keyCheckValue)\n")
        }
        let session = STBSession(box: box, receiver: receiver, printer: printer)
        var services: [any GatehouseService] = [session]
        if let duration = options.duration { services.append(Timer(seconds: duration)) }
        try await ServiceRunner(services: services, logger: Logger.disabled).run()
        return 0
    }

    /// Ends `serve`-style runs after a fixed time (returning ends the runner's group).
    struct Timer: GatehouseService {
        let name = "timer"
        let seconds: Double
        func run() async throws { try await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }
    }
}

/// Prints events and the final state, human-readable or as JSON lines.
struct STBPrinter: Sendable {
    let json: Bool
    let output: @Sendable (String) -> Void

    func event(_ event: SetTopBoxEvent) {
        switch event {
        case .entitlementAdded(let product, let start, let end):
            json ? line(["event": "entitlement_added", "product_id": "\(product)", "start": time(start), "end": time(end)])
                : output("entitlement  + product \(product)  \(time(start)) .. \(time(end))\n")
        case .entitlementCancelled(let product):
            json ? line(["event": "entitlement_cancelled", "product_id": "\(product)"])
                : output("entitlement  - product \(product)\n")
        case .message(let message):
            json ? line(["event": "message", "style": "\(message.style)", "text": message.text, "priority": "\(message.priority)"])
                : output("message      [\(message.style)] p\(message.priority): \(message.text)\n")
        case .keyUpdated(let version, let kcv):
            json ? line(["event": "key_updated", "key_version": "\(version)", "kcv": kcv])
                : output("key          now version \(version), KCV \(kcv)\n")
        case .refused(let reason):
            json ? line(["event": "refused", "reason": reason]) : output("refused      \(reason)\n")
        }
    }

    func state(_ box: VirtualSetTopBox) {
        let s = box.state
        let entitlements = s.entitlements.values.sorted { $0.productID < $1.productID }
        if json {
            var out = #"{"event":"state","device_id":\#(JSONLine.quote(s.deviceID)),"key_version":\#(s.keyVersion),"#
            out += #""entitlements":["#
            out += entitlements.map { #"{"product_id":\#($0.productID),"start":"\#(time($0.start))","end":"\#(time($0.end))"}"# }
                .joined(separator: ",")
            out += #"],"messages":["# + s.messages.map { message($0.message) }.joined(separator: ",")
            out += #"],"mailbox":["# + s.mailbox.map { message($0.message) }.joined(separator: ",")
            out += #"],"counters":{"# + box.counters.keys.sorted().map { #""\#($0)":\#(box.counters[$0]!)"# }
                .joined(separator: ",") + "}}\n"
            output(out)
        } else {
            output("state of \(s.deviceID): key version \(s.keyVersion)\n")
            for e in entitlements { output("  product \(e.productID): \(time(e.start)) .. \(time(e.end))\n") }
            for m in s.messages { output("  message [\(m.message.style)] \(m.message.text)\n") }
            for m in s.mailbox { output("  mailbox \(m.message.text)\n") }
        }
    }

    private func message(_ m: OnScreenMessage) -> String {
        #"{"style":"\#(m.style)","priority":\#(m.priority),"text":\#(JSONLine.quote(m.text))}"#
    }

    private func line(_ fields: [String: String]) { output(JSONLine.encode(fields) + "\n") }

    private func time(_ seconds: UInt32) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: Double(seconds)))
    }
}

/// Runs the receive loop on its own thread (it blocks in recvmmsg) until cancelled.
final class STBSession: GatehouseService, @unchecked Sendable {
    // `box` is touched only by the receive thread, and by the final print after that
    // thread has finished (ordered by `done`), hence unchecked.
    let name = "stb"
    private let box: VirtualSetTopBox
    private let receiver: MulticastReceiver
    private let printer: STBPrinter
    private let done = DispatchSemaphore(value: 0)

    init(box: VirtualSetTopBox, receiver: MulticastReceiver, printer: STBPrinter) {
        self.box = box
        self.receiver = receiver
        self.printer = printer
    }

    func run() async throws {
        let thread = Thread { [self] in
            do {
                try receiver.receiveLoop({ batch in
                    for datagram in batch.datagrams {
                        for event in box.receive(datagram: datagram) { printer.event(event) }
                    }
                }, idle: {})
            } catch {
                printer.output("stb: receive failed: \(error)\n")
            }
            done.signal()
        }
        thread.start()
        await withTaskCancellationHandler {
            while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(50)) }
        } onCancel: { [receiver] in
            receiver.stop()
        }
        receiver.stop()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [done] in
                done.wait()
                continuation.resume()
            }
        }
        printer.state(box)
    }
}
