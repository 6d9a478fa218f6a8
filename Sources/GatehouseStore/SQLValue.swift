import GatehouseCore

/// One bound parameter or one column value. The five storage classes both SQLite and
/// MariaDB can round-trip exactly; times are `int64` milliseconds since the epoch (UTC)
/// and Booleans are `int64` 0 or 1, so the same rows read back the same on both.
public enum SQLValue: Sendable, Hashable, CustomStringConvertible {
    case null
    case int64(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])

    /// `.null` for `nil`, otherwise `.int64`.
    public init(_ value: Int64?) { self = value.map { .int64($0) } ?? .null }
    /// `.null` for `nil`, otherwise `.int64`.
    public init(_ value: Int?) { self = value.map { .int64(Int64($0)) } ?? .null }
    /// `.null` for `nil`, otherwise `.text`.
    public init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    /// `.null` for `nil`, otherwise `.blob`.
    public init(_ value: [UInt8]?) { self = value.map { .blob($0) } ?? .null }
    /// `.null` for `nil`, otherwise `.double`.
    public init(_ value: Double?) { self = value.map { .double($0) } ?? .null }
    /// `.int64(1)` or `.int64(0)`; `.null` for `nil`.
    public init(_ value: Bool?) { self = value.map { .int64($0 ? 1 : 0) } ?? .null }

    public var isNull: Bool { if case .null = self { true } else { false } }

    /// The storage class and size only: values may be keys or personal data, so they
    /// never reach a log or an error message through `description`.
    public var description: String {
        switch self {
        case .null: "NULL"
        case .int64: "int64"
        case .double: "double"
        case .text(let s): "text(\(s.utf8.count) bytes)"
        case .blob(let b): "blob(\(b.count) bytes)"
        }
    }
}

extension SQLValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral, ExpressibleByFloatLiteral,
    ExpressibleByNilLiteral
{
    public init(integerLiteral value: Int64) { self = .int64(value) }
    public init(stringLiteral value: String) { self = .text(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(nilLiteral: ()) { self = .null }
}

/// What a statement that returns no rows did.
public struct SQLExecResult: Sendable, Equatable {
    /// Rows the statement matched (UPDATE counts matched rows, not only changed ones, on
    /// both drivers: MariaDB connects with CLIENT_FOUND_ROWS to agree with SQLite).
    public var affectedRows: Int
    /// The auto-increment id of the last row inserted on this connection (0 when none).
    public var lastInsertID: Int64

    public init(affectedRows: Int, lastInsertID: Int64) {
        self.affectedRows = affectedRows
        self.lastInsertID = lastInsertID
    }
}

/// One result row: values by index or by column name (exact, case-sensitive name as the
/// query spelled it; use `AS` to name expressions).
public struct SQLRow: Sendable, CustomStringConvertible {
    /// Column names shared by every row of one result.
    public let columns: SQLColumns
    public let values: [SQLValue]

    public init(columns: SQLColumns, values: [SQLValue]) {
        self.columns = columns
        self.values = values
    }

    public subscript(index: Int) -> SQLValue { values[index] }

    /// The value of column `name`, or `.null` when the result has no such column.
    public subscript(name: String) -> SQLValue {
        guard let index = columns.index(of: name) else { return .null }
        return values[index]
    }

    /// - Throws: `GatehouseError.database` when the column is missing.
    public func value(_ name: String) throws -> SQLValue {
        guard let index = columns.index(of: name) else {
            throw GatehouseError(.database, "result has no column \(name)")
        }
        return values[index]
    }

    /// An integer column; a `double` holding a whole number is accepted.
    /// - Throws: `GatehouseError.database` when the column is missing, NULL or not an integer.
    public func int64(_ name: String) throws -> Int64 {
        guard let value = try int64OrNil(name) else {
            throw GatehouseError(.database, "column \(name) is NULL, expected an integer")
        }
        return value
    }

    /// - Throws: `GatehouseError.database` when the column is missing or not an integer.
    public func int64OrNil(_ name: String) throws -> Int64? {
        switch try value(name) {
        case .null: return nil
        case .int64(let v): return v
        case .double(let d) where d.rounded() == d && abs(d) < 9.2e18: return Int64(d)
        case let other: throw GatehouseError(.database, "column \(name) is \(other.kind), expected an integer")
        }
    }

    public func int(_ name: String) throws -> Int { Int(try int64(name)) }

    /// - Throws: `GatehouseError.database` when the column is missing, NULL or not a number.
    public func double(_ name: String) throws -> Double {
        switch try value(name) {
        case .double(let d): return d
        case .int64(let v): return Double(v)
        case let other: throw GatehouseError(.database, "column \(name) is \(other.kind), expected a number")
        }
    }

    /// - Throws: `GatehouseError.database` when the column is missing, NULL or not text.
    public func text(_ name: String) throws -> String {
        guard let value = try textOrNil(name) else {
            throw GatehouseError(.database, "column \(name) is NULL, expected text")
        }
        return value
    }

    /// - Throws: `GatehouseError.database` when the column is missing or not text.
    public func textOrNil(_ name: String) throws -> String? {
        switch try value(name) {
        case .null: return nil
        case .text(let s): return s
        case let other: throw GatehouseError(.database, "column \(name) is \(other.kind), expected text")
        }
    }

    /// - Throws: `GatehouseError.database` when the column is missing, NULL or not a blob.
    public func blob(_ name: String) throws -> [UInt8] {
        guard let value = try blobOrNil(name) else {
            throw GatehouseError(.database, "column \(name) is NULL, expected a blob")
        }
        return value
    }

    /// - Throws: `GatehouseError.database` when the column is missing or not a blob.
    public func blobOrNil(_ name: String) throws -> [UInt8]? {
        switch try value(name) {
        case .null: return nil
        case .blob(let b): return b
        case let other: throw GatehouseError(.database, "column \(name) is \(other.kind), expected a blob")
        }
    }

    /// An integer column read as a Boolean (non-zero is true).
    public func bool(_ name: String) throws -> Bool { try int64(name) != 0 }

    public var description: String {
        "SQLRow(" + zip(columns.names, values).map { "\($0): \($1)" }.joined(separator: ", ") + ")"
    }
}

/// The column names of one result, with a name-to-index map built once per result.
public final class SQLColumns: Sendable {
    public let names: [String]
    private let indexByName: [String: Int]

    public init(_ names: [String]) {
        self.names = names
        var map: [String: Int] = [:]
        // The first column wins when a query returns two with the same name.
        for (i, name) in names.enumerated() where map[name] == nil { map[name] = i }
        self.indexByName = map
    }

    public var count: Int { names.count }
    public func index(of name: String) -> Int? { indexByName[name] }
}

extension SQLValue {
    var kind: String {
        switch self {
        case .null: "NULL"
        case .int64: "an integer"
        case .double: "a double"
        case .text: "text"
        case .blob: "a blob"
        }
    }
}
