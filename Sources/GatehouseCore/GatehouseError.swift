/// The one error shape of Gatehouse: an extensible code, a message safe to show to a
/// caller (no secrets, no internals), an optional native code from a C library, and
/// where it was raised. Full detail belongs in the log, not in `description`.
public struct GatehouseError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of failure this is; extensible without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let invalidInput = Code("invalid_input")
        public static let configuration = Code("configuration")
        public static let notFound = Code("not_found")
        public static let conflict = Code("conflict")
        public static let io = Code("io")
        public static let database = Code("database")
        public static let crypto = Code("crypto")
        public static let authentication = Code("authentication")
        public static let unavailable = Code("unavailable")
        public static let `internal` = Code("internal")
    }

    public var code: Code
    /// A sentence for the caller: what went wrong and, where possible, what to do.
    public var message: String
    /// The C library's own error number, when there is one.
    public var nativeCode: Int?
    public var file: String
    public var line: Int

    public init(_ code: Code, _ message: String, nativeCode: Int? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.nativeCode = nativeCode
        self.file = file
        self.line = line
    }

    public var description: String { "\(code): \(message)" }

    public static func == (lhs: GatehouseError, rhs: GatehouseError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.nativeCode == rhs.nativeCode
    }
}
