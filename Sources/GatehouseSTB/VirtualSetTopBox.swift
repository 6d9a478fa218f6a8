import GatehouseCrypto
import GatehouseEMM
import GatehouseTS

/// What the box knows: its entitlements and messages, as a viewer's box would show them.
public struct SetTopBoxState: Sendable, Equatable {
    public struct Entitlement: Sendable, Equatable {
        public var productID: UInt16
        /// Unix seconds.
        public var start: UInt32
        public var end: UInt32
    }

    public struct Message: Sendable, Equatable {
        public var sequence: UInt64
        public var message: OnScreenMessage
    }

    public var deviceID: String
    public var keyVersion: UInt16
    /// Active entitlements by product.
    public var entitlements: [UInt16: Entitlement] = [:]
    /// On-screen messages received (scrolling, forced, fingerprint), newest last.
    public var messages: [Message] = []
    /// The mailbox keeps the latest ten.
    public var mailbox: [Message] = []
}

/// Something the box learned or refused.
public enum SetTopBoxEvent: Sendable, Equatable {
    case entitlementAdded(productID: UInt16, start: UInt32, end: UInt32)
    case entitlementCancelled(productID: UInt16)
    case message(OnScreenMessage)
    case keyUpdated(version: UInt16, kcv: String)
    /// An EMM for this box that failed authentication (forged, altered or under a wrong key).
    case refused(reason: String)
}

/// A virtual set-top box: it watches the EMM stream, keeps only the EMMs addressed to
/// its own device (by the unique address in the clear header), authenticates and
/// decrypts them with its key, refuses replays, and keeps its entitlements and
/// messages. A product's state follows the newest EMM about it (by sequence number), so
/// an older add repeated by the carousel can never undo a newer cancel.
///
/// Not `Sendable`: one receive loop owns it.
public final class VirtualSetTopBox {
    public private(set) var state: SetTopBoxState
    public let address: UInt64
    /// Counts of what the box saw, for `--json` output and tests.
    public private(set) var counters: [String: Int] = [:]

    private var openers: [UInt16: EMMOpener] = [:]
    private let replayGuard: ReplayGuard
    private var demux = SectionDemux()
    private var emmPIDs: Set<UInt16> = []
    private var productSequence: [UInt16: UInt64] = [:]
    private var messageSequences: Set<UInt64> = []

    /// - Parameters:
    ///   - emmPIDs: PIDs to watch besides those the CAT announces.
    ///   - replayWindow: how far below the newest accepted sequence number an unseen EMM
    ///     is still taken (the carousel repeats older live EMMs after newer ones); 64 by default.
    public init(deviceID: String, key: SymmetricKey, keyVersion: UInt16 = 1, emmPIDs: [UInt16] = [],
        replayWindow: Int = 64) throws
    {
        self.state = SetTopBoxState(deviceID: deviceID, keyVersion: keyVersion)
        self.address = DeviceAddress.unique(deviceID: deviceID)
        self.replayGuard = ReplayGuard(window: replayWindow)
        self.openers[keyVersion] = try EMMOpener(key: key, keyVersion: keyVersion)
        demux.addPID(TS.PID.cat)
        for pid in emmPIDs { watch(pid) }
    }

    private func watch(_ pid: UInt16) {
        if emmPIDs.insert(pid).inserted { demux.addPID(pid) }
    }

    /// Feeds one UDP datagram (raw TS or RTP/TS); returns what the box learned from it.
    public func receive(datagram: UnsafeRawBufferPointer) -> [SetTopBoxEvent] {
        guard let decoded = try? TSDatagram.decode(datagram) else {
            bump("datagrams_malformed")
            return []
        }
        let ts = UnsafeRawBufferPointer(rebasing: datagram[decoded.transportStreamRange])
        var events: [SetTopBoxEvent] = []
        // Packet by packet, so EMM PIDs a CAT announces count from the very next packet.
        var offset = 0
        while offset + TS.packetSize <= ts.count {
            var sections: [(UInt16, [UInt8])] = []
            demux.feed(packet: UnsafeRawBufferPointer(rebasing: ts[offset..<(offset + TS.packetSize)])) { event in
                if case .section(let section) = event { sections.append((section.pid, section.copyBytes())) }
            }
            offset += TS.packetSize
            for (pid, bytes) in sections {
                if pid == TS.PID.cat {
                    if let cat = try? ConditionalAccessTable(parsing: bytes) {
                        for emmPID in cat.emmPIDs { watch(emmPID) }
                    }
                } else if let event = handle(section: bytes) {
                    events.append(event)
                }
            }
        }
        return events
    }

    public func receive(datagram: [UInt8]) -> [SetTopBoxEvent] {
        datagram.withUnsafeBytes { receive(datagram: $0) }
    }

    /// Handles one EMM section; nil when it is not for this box, a repeat, or nothing new.
    public func handle(section: [UInt8]) -> SetTopBoxEvent? {
        bump("sections")
        guard let envelope = try? EMMEnvelope(parsing: section) else {
            bump("not_emm")
            return nil
        }
        guard envelope.addressing == .unique(deviceID: address) else {
            bump("other_devices")
            return nil
        }
        guard let opener = openers[envelope.keyVersion] else {
            bump("unknown_key_version")
            return nil
        }
        let emm: EMM
        do {
            emm = try opener.open(section)
        } catch {
            bump("refused")
            return .refused(reason: String(describing: error))
        }
        do {
            try replayGuard.accept(emm)
        } catch {
            bump("repeats")
            return nil
        }
        bump("accepted")
        return apply(emm)
    }

    private func apply(_ emm: EMM) -> SetTopBoxEvent? {
        switch emm.payload {
        case .entitlementAdd(let grant):
            guard isNewest(emm, product: grant.productID) else { return nil }
            state.entitlements[grant.productID] = .init(productID: grant.productID, start: grant.start, end: grant.end)
            return .entitlementAdded(productID: grant.productID, start: grant.start, end: grant.end)
        case .entitlementCancel(let product):
            guard isNewest(emm, product: product) else { return nil }
            state.entitlements[product] = nil
            return .entitlementCancelled(productID: product)
        case .onScreenMessage(let message):
            guard messageSequences.insert(emm.sequenceNumber).inserted else { return nil }
            let entry = SetTopBoxState.Message(sequence: emm.sequenceNumber, message: message)
            if message.style == .mailbox {
                state.mailbox.append(entry)
                state.mailbox.sort { $0.sequence < $1.sequence }
                if state.mailbox.count > 10 { state.mailbox.removeFirst(state.mailbox.count - 10) }
            } else {
                state.messages.append(entry)
            }
            return .message(message)
        case .keyUpdate(let update):
            guard update.newKeyVersion > state.keyVersion, let opener = try? EMMOpener(
                key: update.newKey, keyVersion: update.newKeyVersion)
            else { return nil }
            openers[update.newKeyVersion] = opener
            state.keyVersion = update.newKeyVersion
            return .keyUpdated(version: update.newKeyVersion, kcv: update.newKey.keyCheckValue)
        }
    }

    private func isNewest(_ emm: EMM, product: UInt16) -> Bool {
        if let seen = productSequence[product], seen >= emm.sequenceNumber { return false }
        productSequence[product] = emm.sequenceNumber
        return true
    }

    private func bump(_ name: String) { counters[name, default: 0] += 1 }
}
