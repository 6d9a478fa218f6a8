import Foundation

/// The Gatehouse schema: one logical schema written once, rendered per dialect.
///
/// Conventions, so rows read back the same on SQLite and MariaDB:
/// - times are `BIGINT` milliseconds since the epoch (UTC); no DATETIME, no time zones;
/// - Booleans are `INTEGER` 0/1 with a CHECK; enumerations are `VARCHAR` with a CHECK;
/// - identifiers are `VARCHAR(n)` compared byte-wise (SQLite BINARY, MariaDB `utf8mb4_bin`);
/// - foreign keys are table constraints (MariaDB ignores inline `REFERENCES`).
///
/// Placeholders differ per dialect: `{ID}` (auto-increment primary key), `{BLOB}`,
/// `{LONGTEXT}` and `{TABLE}` (MariaDB table options).
public enum Schema {
    /// Every migration, oldest first. Append new versions; never edit a released one.
    public static let migrations: [Migration] = [
        render(version: 1, name: "initial schema", v1),
        // The embedded bus (GatehouseBus): a durable queue in the same database. One
        // partition per topic; `bus_topics.last_offset` is bumped (row lock) before each
        // insert, so offsets commit in order on MariaDB too and a reader never skips one.
        render(
            version: 2, name: "embedded bus",
            [
                """
                CREATE TABLE IF NOT EXISTS bus_topics (
                    topic VARCHAR(249) NOT NULL PRIMARY KEY,
                    last_offset BIGINT NOT NULL
                ){TABLE}
                """,
                """
                CREATE TABLE IF NOT EXISTS bus_messages (
                    topic VARCHAR(249) NOT NULL,
                    message_offset BIGINT NOT NULL,
                    partition_key VARCHAR(255) NOT NULL,
                    payload {BLOB} NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (topic, message_offset)
                ){TABLE}
                """,
                """
                CREATE TABLE IF NOT EXISTS bus_offsets (
                    consumer_group VARCHAR(249) NOT NULL,
                    topic VARCHAR(249) NOT NULL,
                    next_offset BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    PRIMARY KEY (consumer_group, topic)
                ){TABLE}
                """,
            ]),
        // The relay's republish check finds still-accepted requests by status and needs
        // their outbox rows by request id (without this index the check was quadratic).
        render(
            version: 3, name: "outbox by request",
            ["CREATE INDEX IF NOT EXISTS outbox_by_request ON outbox (request_id)"]),
    ]

    /// The newest schema version.
    public static var latestVersion: Int { migrations.last?.version ?? 0 }

    static func render(version: Int, name: String, _ statements: [String]) -> Migration {
        func substitute(_ sql: String, _ dialect: SQLDialect) -> String {
            let values: [(String, String)] =
                dialect == .sqlite
                ? [
                    ("{ID}", "INTEGER PRIMARY KEY AUTOINCREMENT"), ("{BLOB}", "BLOB"), ("{LONGTEXT}", "TEXT"),
                    ("{TABLE}", ""),
                ]
                : [
                    ("{ID}", "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY"), ("{BLOB}", "MEDIUMBLOB"),
                    ("{LONGTEXT}", "MEDIUMTEXT"), ("{TABLE}", Migrator.tableOptions(.mariadb)),
                ]
            var out = sql
            for (key, value) in values { out = out.replacingOccurrences(of: key, with: value) }
            return out
        }
        return Migration(
            version: version, name: name, sqlite: statements.map { substitute($0, .sqlite) },
            mariadb: statements.map { substitute($0, .mariadb) })
    }

    static let v1: [String] = [
        // Set-top boxes / smart cards. Never deleted (revoked instead), so rows that refer
        // to a device can use foreign keys.
        """
        CREATE TABLE IF NOT EXISTS devices (
            device_id VARCHAR(64) NOT NULL PRIMARY KEY,
            status VARCHAR(16) NOT NULL DEFAULT 'active',
            key_version INTEGER NOT NULL DEFAULT 0,
            next_emm_sequence BIGINT NOT NULL DEFAULT 0,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            CONSTRAINT devices_status CHECK (status IN ('active', 'suspended', 'revoked'))
        ){TABLE}
        """,
        // Device keys wrapped under the KEK; the clear key never reaches the database.
        """
        CREATE TABLE IF NOT EXISTS device_keys (
            device_id VARCHAR(64) NOT NULL,
            version INTEGER NOT NULL,
            wrapped_key {BLOB} NOT NULL,
            kcv VARCHAR(16) NOT NULL,
            created_at BIGINT NOT NULL,
            retired_at BIGINT NULL,
            PRIMARY KEY (device_id, version),
            CONSTRAINT device_keys_device FOREIGN KEY (device_id) REFERENCES devices (device_id)
        ){TABLE}
        """,
        """
        CREATE TABLE IF NOT EXISTS entitlements (
            id {ID},
            device_id VARCHAR(64) NOT NULL,
            product_id INTEGER NOT NULL,
            starts_at BIGINT NOT NULL,
            ends_at BIGINT NOT NULL,
            status VARCHAR(16) NOT NULL DEFAULT 'active',
            request_id VARCHAR(64) NOT NULL,
            created_at BIGINT NOT NULL,
            cancelled_at BIGINT NULL,
            CONSTRAINT entitlements_device FOREIGN KEY (device_id) REFERENCES devices (device_id),
            CONSTRAINT entitlements_product CHECK (product_id BETWEEN 0 AND 65535),
            CONSTRAINT entitlements_period CHECK (ends_at >= starts_at),
            CONSTRAINT entitlements_status CHECK (status IN ('active', 'cancelled'))
        ){TABLE}
        """,
        "CREATE INDEX IF NOT EXISTS entitlements_by_device ON entitlements (device_id, product_id, ends_at)",
        "CREATE INDEX IF NOT EXISTS entitlements_by_request ON entitlements (request_id)",
        // One row per on-screen message; target 'all' has no device.
        """
        CREATE TABLE IF NOT EXISTS generate_osm (
            id {ID},
            request_id VARCHAR(64) NOT NULL,
            target_kind VARCHAR(16) NOT NULL,
            device_id VARCHAR(64) NULL,
            kind VARCHAR(16) NOT NULL DEFAULT 'text',
            text {LONGTEXT} NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            duration_ms BIGINT NOT NULL,
            starts_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            repeat_count INTEGER NOT NULL DEFAULT 1,
            fingerprint_position VARCHAR(32) NULL,
            created_at BIGINT NOT NULL,
            CONSTRAINT generate_osm_device FOREIGN KEY (device_id) REFERENCES devices (device_id),
            CONSTRAINT generate_osm_target CHECK (
                (target_kind = 'device' AND device_id IS NOT NULL) OR (target_kind = 'all' AND device_id IS NULL))
        ){TABLE}
        """,
        "CREATE INDEX IF NOT EXISTS generate_osm_by_request ON generate_osm (request_id)",
        "CREATE INDEX IF NOT EXISTS generate_osm_by_device ON generate_osm (device_id, expires_at)",
        // Built EMM sections and their carousel state. (device_id, sequence) is unique: the
        // sequence is what a receiver uses to refuse a replay.
        """
        CREATE TABLE IF NOT EXISTS emms (
            id {ID},
            device_id VARCHAR(64) NULL,
            request_id VARCHAR(64) NULL,
            kind VARCHAR(32) NOT NULL,
            table_id INTEGER NOT NULL,
            sequence BIGINT NOT NULL,
            section {BLOB} NOT NULL,
            first_send_at BIGINT NOT NULL,
            repeat_interval_ms BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            urgent INTEGER NOT NULL DEFAULT 0,
            send_count BIGINT NOT NULL DEFAULT 0,
            last_sent_at BIGINT NULL,
            created_at BIGINT NOT NULL,
            CONSTRAINT emms_device FOREIGN KEY (device_id) REFERENCES devices (device_id),
            CONSTRAINT emms_table_id CHECK (table_id BETWEEN 0 AND 255),
            CONSTRAINT emms_urgent CHECK (urgent IN (0, 1))
        ){TABLE}
        """,
        "CREATE UNIQUE INDEX IF NOT EXISTS emms_device_sequence ON emms (device_id, sequence)",
        "CREATE INDEX IF NOT EXISTS emms_by_expiry ON emms (expires_at)",
        "CREATE INDEX IF NOT EXISTS emms_by_request ON emms (request_id)",
        // Every accepted API write: idempotency, status, and what the caller was answered.
        """
        CREATE TABLE IF NOT EXISTS requests (
            request_id VARCHAR(64) NOT NULL PRIMARY KEY,
            kind VARCHAR(32) NOT NULL,
            idempotency_key VARCHAR(128) NULL,
            body_hash VARCHAR(128) NOT NULL,
            token_name VARCHAR(64) NULL,
            status VARCHAR(16) NOT NULL DEFAULT 'accepted',
            reason {LONGTEXT} NULL,
            accepted_at BIGINT NOT NULL,
            processed_at BIGINT NULL,
            on_air_at BIGINT NULL,
            response {LONGTEXT} NULL,
            CONSTRAINT requests_status CHECK (status IN ('accepted', 'processed', 'failed'))
        ){TABLE}
        """,
        "CREATE UNIQUE INDEX IF NOT EXISTS requests_idempotency_key ON requests (idempotency_key)",
        "CREATE INDEX IF NOT EXISTS requests_by_status ON requests (status, accepted_at)",
        // Transactional outbox: written in the same transaction as the request, published
        // to the bus afterwards, in id order per partition key (the device id).
        """
        CREATE TABLE IF NOT EXISTS outbox (
            id {ID},
            request_id VARCHAR(64) NOT NULL,
            partition_key VARCHAR(64) NOT NULL,
            payload {BLOB} NOT NULL,
            created_at BIGINT NOT NULL,
            published_at BIGINT NULL
        ){TABLE}
        """,
        "CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (published_at, id)",
        // Who did what; no foreign key, so unknown devices are recorded too.
        """
        CREATE TABLE IF NOT EXISTS audit_log (
            id {ID},
            at BIGINT NOT NULL,
            actor VARCHAR(64) NOT NULL,
            action VARCHAR(64) NOT NULL,
            device_id VARCHAR(64) NULL,
            request_id VARCHAR(64) NULL,
            detail {LONGTEXT} NULL
        ){TABLE}
        """,
        "CREATE INDEX IF NOT EXISTS audit_log_by_device ON audit_log (device_id, at)",
        "CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at)",
        // API bearer tokens: only a hash of the token is stored.
        """
        CREATE TABLE IF NOT EXISTS api_tokens (
            name VARCHAR(64) NOT NULL PRIMARY KEY,
            token_hash VARCHAR(128) NOT NULL,
            scopes VARCHAR(255) NOT NULL,
            created_at BIGINT NOT NULL,
            revoked_at BIGINT NULL
        ){TABLE}
        """,
        "CREATE UNIQUE INDEX IF NOT EXISTS api_tokens_hash ON api_tokens (token_hash)",
    ]
}
