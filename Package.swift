// swift-tools-version:6.0
// Gatehouse: a Conditional Access System back end. One module per concern; the C
// libraries each sit behind one system-library target (module map + shim header).
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "Gatehouse",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gatehouse", targets: ["gatehouse"]),
        .executable(name: "gatehouse-bench", targets: ["GatehouseBench"]),
    ],
    targets: [
        // MARK: C libraries (Debian -dev packages)
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMariaDB", pkgConfig: "libmariadb", providers: [.apt(["libmariadb-dev"])]),
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CRdKafka", pkgConfig: "rdkafka", providers: [.apt(["librdkafka-dev"])]),

        // MARK: Pure modules (no C imports)
        /// Logging, configuration, errors shared by every service.
        .target(name: "GatehouseCore", swiftSettings: strict),
        /// MPEG-2 transport stream: packets, sections, CRC-32, CAT, RTP, bit-rate meters.
        .target(name: "GatehouseTS", swiftSettings: strict),
        /// The business vocabulary: validated commands, OSM kinds, the rules applied to them.
        .target(name: "GatehouseDomain", dependencies: ["GatehouseCore"], swiftSettings: strict),
        /// Offline and live analysis of a transport stream (what `analyze` prints).
        .target(name: "GatehouseAnalysis", dependencies: ["GatehouseTS"], swiftSettings: strict),

        // MARK: Adapters over C libraries
        /// Authenticated encryption, key wrap, KCV, random over OpenSSL libcrypto.
        .target(name: "GatehouseCrypto", dependencies: ["COpenSSL"], swiftSettings: strict),
        /// EMM model, byte layout, sealing and opening.
        .target(name: "GatehouseEMM", dependencies: ["GatehouseCrypto", "GatehouseTS"], swiftSettings: strict),
        /// Storage behind one protocol: SQLite (embedded) and MariaDB.
        .target(
            name: "GatehouseStore", dependencies: ["GatehouseCore", "CSQLite", "CMariaDB"], swiftSettings: strict),
        /// HTTP server over libmicrohttpd, router, bearer-token authentication.
        .target(name: "GatehouseHTTP", dependencies: ["GatehouseCore", "CMicroHTTPD"], swiftSettings: strict),

        /// The command bus: a durable embedded queue in the database, or Kafka via librdkafka.
        .target(
            name: "GatehouseBus", dependencies: ["GatehouseCore", "GatehouseStore", "GatehouseDomain", "CRdKafka"],
            swiftSettings: strict),

        // MARK: Services
        /// The REST API: validates, stores request + outbox in one transaction, answers 202.
        .target(
            name: "GatehouseAPI",
            dependencies: ["GatehouseCore", "GatehouseDomain", "GatehouseHTTP", "GatehouseStore", "GatehouseCrypto"],
            swiftSettings: strict),

        /// Applies commands exactly once: business rules, EMM building, audit log.
        .target(
            name: "GatehouseWorker",
            dependencies: [
                "GatehouseCore", "GatehouseDomain", "GatehouseStore", "GatehouseCrypto", "GatehouseEMM", "GatehouseBus",
            ],
            swiftSettings: strict),
        /// A virtual set-top box: filters, authenticates and decrypts its own EMMs, refuses replays.
        .target(
            name: "GatehouseSTB", dependencies: ["GatehouseTS", "GatehouseEMM", "GatehouseCrypto"],
            swiftSettings: strict),
        /// The EMM carousel: schedule, pacing, TS packetizing, UDP multicast output.
        .target(
            name: "GatehousePlayout", dependencies: ["GatehouseCore", "GatehouseTS", "GatehouseStore", "GatehouseEMM"],
            swiftSettings: strict),
        /// Watches the multicast feed: demux, decrypt, conditions and actions, bandwidth, Pushgateway.
        .target(
            name: "GatehouseMonitor",
            dependencies: ["GatehouseCore", "GatehouseTS", "GatehouseEMM", "GatehouseCrypto", "GatehouseStore"],
            swiftSettings: strict),

        // MARK: Executable
        /// Subcommand implementations, kept apart from `main` so they can be tested.
        .target(
            name: "GatehouseCLI",
            dependencies: [
                "GatehouseCore", "GatehouseDomain", "GatehouseTS", "GatehouseAnalysis", "GatehouseCrypto", "GatehouseEMM",
                "GatehouseStore",
                "GatehouseHTTP", "GatehouseAPI", "GatehouseWorker", "GatehouseBus", "GatehousePlayout", "GatehouseSTB",
                "GatehouseMonitor",
            ],
            swiftSettings: strict),
        .executableTarget(name: "gatehouse", dependencies: ["GatehouseCLI"], swiftSettings: strict),
        .executableTarget(
            name: "GatehouseBench",
            dependencies: ["GatehouseTS", "GatehouseAnalysis", "GatehouseCrypto", "GatehouseEMM", "GatehousePlayout",
                "GatehouseMonitor",
            ],
            path: "bench/GatehouseBench",
            swiftSettings: strict + [.define("GATEHOUSE_PLAYOUT_BENCH"), .define("GATEHOUSE_BENCH_MONITOR")]),

        // MARK: Tests
        .target(name: "GatehouseTestSupport", dependencies: ["GatehouseCore", "GatehouseStore"], path: "Tests/GatehouseTestSupport",
            swiftSettings: strict),
        .testTarget(name: "GatehouseCoreTests", dependencies: ["GatehouseCore", "GatehouseTestSupport"], swiftSettings: strict),
        .testTarget(name: "GatehouseTSTests", dependencies: ["GatehouseTS", "GatehouseTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "GatehouseAnalysisTests",
            dependencies: ["GatehouseAnalysis", "GatehouseCLI", "GatehouseTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "GatehouseCryptoTests", dependencies: ["GatehouseCrypto", "GatehouseTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "GatehouseEMMTests", dependencies: ["GatehouseEMM", "GatehouseTS", "GatehouseTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "GatehouseStoreTests", dependencies: ["GatehouseStore", "GatehouseTestSupport"], swiftSettings: strict),
        .testTarget(
            name: "GatehouseDomainTests", dependencies: ["GatehouseDomain", "GatehouseTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "GatehouseAPITests",
            dependencies: [
                "GatehouseAPI", "GatehouseBus", "GatehouseCLI", "GatehouseStore", "GatehouseWorker", "GatehouseTestSupport",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "GatehouseBusTests",
            dependencies: ["GatehouseBus", "GatehouseStore", "GatehouseDomain", "GatehouseTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "GatehousePlayoutTests",
            dependencies: ["GatehousePlayout", "GatehouseTS", "GatehouseEMM", "GatehouseStore", "GatehouseTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "GatehouseMonitorTests",
            dependencies: [
                "GatehouseMonitor", "GatehouseTS", "GatehouseEMM", "GatehouseCrypto", "GatehouseStore", "GatehouseCore",
                "GatehouseTestSupport",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "GatehouseWorkerTests",
            dependencies: [
                "GatehouseWorker", "GatehouseAPI", "GatehouseBus", "GatehouseStore", "GatehouseEMM", "GatehouseDomain",
                "GatehouseTestSupport",
            ],
            swiftSettings: strict),
        /// Runs the real `gatehouse` executable as separate processes (crash tests, modes).
        .testTarget(
            name: "GatehouseIntegrationTests",
            dependencies: [
                "GatehouseStore", "GatehouseDomain", "GatehouseTestSupport", "GatehouseEMM", "GatehouseTS",
                "GatehouseCrypto", "GatehouseMonitor",
            ],
            swiftSettings: strict),
        .testTarget(
            name: "GatehouseSTBTests",
            dependencies: ["GatehouseSTB", "GatehouseTS", "GatehouseEMM", "GatehouseCrypto", "GatehouseTestSupport"],
            swiftSettings: strict),
        .testTarget(
            name: "GatehouseHTTPTests", dependencies: ["GatehouseHTTP", "GatehouseTestSupport"], swiftSettings: strict),
    ]
)
