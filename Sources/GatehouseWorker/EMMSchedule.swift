import GatehouseDomain

/// When and how often the carousel sends each kind of EMM. A box that was off when an
/// EMM was first sent must still receive it, so EMMs repeat for as long as they matter.
public struct EMMSchedule: Sendable {
    /// Entitlement add/cancel: repeat every 30 s until the entitlement ends.
    public var entitlementRepeatMs: Int64 = 30_000
    /// Routine OSMs: repeat every 10 s until they expire.
    public var messageRepeatMs: Int64 = 10_000
    /// Urgent OSMs (priority 6–7 or forced): every 5 s.
    public var urgentRepeatMs: Int64 = 5_000
    /// Key updates: every 10 s for a week, so boxes that were off learn their new key.
    public var keyUpdateRepeatMs: Int64 = 10_000
    public var keyUpdateLifetimeMs: Int64 = 7 * 86_400_000
    /// No EMM stays on air longer than this (an entitlement for ten years is re-sent
    /// when it is renewed or when the box's key rotates). Default 90 days.
    public var maximumLifetimeMs: Int64 = 90 * 86_400_000

    public init() {}
}
