import Foundation
import GatehouseAPI
import GatehouseCore
import GatehouseCrypto
import GatehouseDomain
import GatehouseHTTP
import GatehouseStore

/// `gatehouse migrate`: applies the schema migrations to the configured database.
public enum MigrateCommand: Subcommand {
    public static let name = "migrate"
    public static let summary = "apply database schema migrations"
    public static let usage = "usage: gatehouse migrate [--config FILE] [--json]"

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        let json = rest.contains("--json")
        guard rest.allSatisfy({ $0 == "--json" }) else { throw UsageError("unknown option \(rest[0])") }
        var logger = context.logger
        logger.minimumLevel = settings.logLevel
        if settings.isEmbeddedDatabase {
            try FileManager.default.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true)
        }
        let database = try await Database.open(url: settings.databaseURL, logger: logger)
        let report = try await Migrator(logger: logger).migrate(database)
        await database.close()
        if json {
            context.standardOutput(#"{"applied":[\#(report.applied.map(String.init).joined(separator: ","))],"version":\#(report.version)}"# + "\n")
        } else {
            context.standardOutput(
                report.applied.isEmpty
                    ? "schema is up to date at version \(report.version)\n"
                    : "applied migrations \(report.applied.map(String.init).joined(separator: ", ")); schema version \(report.version)\n")
        }
        return 0
    }
}

/// `gatehouse keygen`: a random device key (hex + KCV), or a new KEK file.
public enum KeygenCommand: Subcommand {
    public static let name = "keygen"
    public static let summary = "make a random AES key for a device, or a KEK file"
    public static let usage = """
        usage: gatehouse keygen [--bits 128|256] [--json]    print a new device key and its KCV
               gatehouse keygen --kek FILE                  write a new AES-256 key-encryption key (mode 0600)
        """

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        var bits = 128
        var json = false
        var kekPath: String?
        var index = 0
        while index < arguments.count {
            switch arguments[index] {
            case "--bits":
                guard index + 1 < arguments.count, let value = Int(arguments[index + 1]), value == 128 || value == 256 else {
                    throw UsageError("--bits takes 128 or 256")
                }
                bits = value
                index += 1
            case "--json": json = true
            case "--kek":
                guard index + 1 < arguments.count else { throw UsageError("--kek needs a file path") }
                kekPath = arguments[index + 1]
                index += 1
            default: throw UsageError("unknown option \(arguments[index])")
            }
            index += 1
        }
        if let kekPath {
            try KeyEncryptionKey.create(path: kekPath)
            context.standardOutput("wrote a new key-encryption key to \(kekPath)\n")
            return 0
        }
        let key = try SymmetricKey.random(size: bits == 256 ? .bits256 : .bits128)
        // Printing the key is this command's purpose: it goes to stdout only, never a log.
        if json {
            context.standardOutput(#"{"key":"\#(key.unsafeHexString())","kcv":"\#(key.keyCheckValue)","bits":\#(bits)}"# + "\n")
        } else {
            context.standardOutput("\(key.unsafeHexString())  KCV \(key.keyCheckValue)\n")
        }
        return 0
    }
}

/// `gatehouse token create|revoke|list`: API bearer tokens.
public enum TokenCommand: Subcommand {
    public static let name = "token"
    public static let summary = "create, revoke or list API tokens"
    public static let usage = """
        usage: gatehouse token create NAME --scopes read,write,keys [--config FILE] [--json]
               gatehouse token revoke NAME [--config FILE]
               gatehouse token list [--config FILE] [--json]
        The token is printed once; only its SHA-256 hash is stored.
        """

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        var positional: [String] = []
        var scopes: Set<Scope>?
        var json = false
        var index = 0
        while index < rest.count {
            switch rest[index] {
            case "--scopes":
                guard index + 1 < rest.count else { throw UsageError("--scopes needs a list such as read,write") }
                do { scopes = try Scope.parseList(rest[index + 1]) } catch { throw UsageError(error.message) }
                index += 1
            case "--json": json = true
            case let option where option.hasPrefix("--"): throw UsageError("unknown option \(option)")
            default: positional.append(rest[index])
            }
            index += 1
        }
        guard let verb = positional.first else { throw UsageError("say create, revoke or list") }
        var logger = context.logger
        logger.minimumLevel = max(settings.logLevel, .warning)
        if settings.isEmbeddedDatabase {
            try FileManager.default.createDirectory(atPath: settings.dataDirectory, withIntermediateDirectories: true)
        }
        let database = try await Database.open(url: settings.databaseURL, logger: logger)
        defer { Task { await database.close() } }
        if settings.autoMigrate { _ = try await Migrator(logger: logger).migrate(database) }
        let tokens = APITokens(database: database)
        switch verb {
        case "create":
            guard positional.count == 2 else { throw UsageError("token create takes one NAME") }
            guard let scopes else { throw UsageError("token create needs --scopes") }
            let token = try await tokens.create(name: positional[1], scopes: scopes, now: ISO8601.nowMillis())
            if json {
                context.standardOutput(#"{"name":\#(JSONLine.quote(positional[1])),"token":"\#(token)"}"# + "\n")
            } else {
                context.standardOutput(token + "\n")
                context.standardError("token \(positional[1]) created; it is shown only this once\n")
            }
        case "revoke":
            guard positional.count == 2 else { throw UsageError("token revoke takes one NAME") }
            guard try await tokens.revoke(name: positional[1], now: ISO8601.nowMillis()) else {
                context.standardError("no live token named \(positional[1])\n")
                return 1
            }
            context.standardOutput("token \(positional[1]) revoked\n")
        case "list":
            let entries = try await tokens.entries()
            if json {
                let items = entries.map { entry in
                    #"{"name":\#(JSONLine.quote(entry.name)),"scopes":[\#(entry.scopes.map { "\"\($0.rawValue)\"" }.sorted().joined(separator: ","))]}"#
                }
                context.standardOutput("[" + items.joined(separator: ",") + "]\n")
            } else {
                for entry in entries {
                    context.standardOutput("\(entry.name)\t\(entry.scopes.map(\.rawValue).sorted().joined(separator: ","))\n")
                }
            }
        default:
            throw UsageError("unknown token command \(verb): say create, revoke or list")
        }
        return 0
    }
}

/// `gatehouse api`: the HTTP API alone.
public enum APICommand: Subcommand {
    public static let name = "api"
    public static let summary = "run the HTTP API service"
    public static let usage = "usage: gatehouse api [--config FILE]   (settings: GATEHOUSE_HTTP_ADDR, GATEHOUSE_DATABASE_URL, ...)"

    public static func run(arguments: [String], context: CommandContext) async throws -> Int32 {
        let (settings, rest) = try loadSettings(arguments)
        guard rest.isEmpty else { throw UsageError("unknown option \(rest[0])") }
        let boot = try await Bootstrap.make(settings, context: context)
        let server = try await boot.apiServer(kek: try boot.kek(createIfMissing: false))
        try await ServiceRunner(services: [server], logger: boot.logger).run {
            await boot.database.close()
        }
        return 0
    }
}
