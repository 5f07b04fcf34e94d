// swift-tools-version: 6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let yams = Target.Dependency.product(name: "Yams", package: "Yams")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "nfldb",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "nfldb", targets: ["nfldb"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // libpq from Debian's libpq-dev; pkg-config supplies -I/usr/include/postgresql.
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]
        ),
        // OpenSSL's libcrypto (Debian's libssl-dev, already required by libpq-dev) for SHA-256 checksums and SCRAM (HMAC, PBKDF2).
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"]), .brew(["openssl"])]),
        // OpenSSL's libssl: the peer certificate of libpq's TLS session and TLS failure diagnosis (NFLDBPostgres only).
        .systemLibrary(name: "CLibSSL", pkgConfig: "libssl", providers: [.apt(["libssl-dev"]), .brew(["openssl"])]),
        // hiredis 0.14 from Debian's libhiredis-dev; only NFLDBRedis imports it.
        .systemLibrary(name: "CHiredis", pkgConfig: "hiredis", providers: [.apt(["libhiredis-dev"]), .brew(["hiredis"])]),
        // libcurl from Debian's libcurl4-openssl-dev; only NFLDBHTTP imports it.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"]), .brew(["curl"])]),
        // Diagnostics, exit codes, secret redaction, configuration, logging, process runner.
        .target(name: "NFLDBCore", dependencies: ["CLibCrypto", logging, yams], swiftSettings: swiftSettings),
        // HTTP(S) on libcurl, each transfer on its own thread with backpressure, a hard deadline and a
        // body limit: the ETL source, alert webhooks and AWS Secrets Manager (not URLSession, whose
        // Linux teardown can wait forever on a server that keeps sending).
        .target(name: "NFLDBHTTP", dependencies: ["CCurl", "NFLDBCore"], swiftSettings: swiftSettings),
        // The only module that imports CLibPQ.
        .target(name: "NFLDBPostgres", dependencies: ["CLibPQ", "CLibSSL", "NFLDBCore", logging], swiftSettings: swiftSettings),
        // The one place that renders pgbackrest.conf and runs pgBackRest (typed errors): the sandbox and `nfldb backup` use it.
        .target(name: "NFLDBPgBackRest", dependencies: ["NFLDBCore", "NFLDBPostgres", logging], swiftSettings: swiftSettings),
        // The Redis stack beside the Postgres one: a non-Sendable hiredis connection, Argv commands, scripts.
        .target(name: "NFLDBRedis", dependencies: ["CHiredis", "CLibCrypto", "NFLDBCore", logging], swiftSettings: swiftSettings),
        // The task queue on Redis with durable results in PostgreSQL: `nfldb queue …`, `nfldb worker`.
        .target(name: "NFLDBQueue", dependencies: ["NFLDBRedis", "NFLDBPostgres", "NFLDBHealth", "NFLDBCore", logging], swiftSettings: swiftSettings),
        // `nfldb worker --metrics-port`: the worker's metrics through swift-metrics, exposed by swift-prometheus on 127.0.0.1.
        .target(
            name: "NFLDBQueueMetrics",
            dependencies: ["NFLDBQueue", "NFLDBRedis", "NFLDBCore", logging, .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: swiftSettings),
        // Throwaway PostgreSQL clusters: `nfldb sandbox` and the test harness.
        .target(name: "NFLDBSandbox", dependencies: ["NFLDBCore", "NFLDBPostgres", "NFLDBPgBackRest", logging], swiftSettings: swiftSettings),
        // Versioned up/down migrations: `nfldb migrate …`.
        .target(name: "NFLDBMigrations", dependencies: ["NFLDBCore", "NFLDBPostgres", logging], swiftSettings: swiftSettings),
        // Declarative roles and grants: `nfldb roles plan|apply|check`.
        .target(name: "NFLDBRoles", dependencies: ["CLibCrypto", "NFLDBCore", "NFLDBPostgres", logging, yams], swiftSettings: swiftSettings),
        // Audit triggers and the append-only log: `nfldb audit …`.
        .target(name: "NFLDBAudit", dependencies: ["NFLDBCore", "NFLDBPostgres", logging], swiftSettings: swiftSettings),
        // Health probes: `nfldb health`.
        .target(name: "NFLDBHealth", dependencies: ["NFLDBCore", "NFLDBPostgres", "NFLDBPgBackRest", logging], swiftSettings: swiftSettings),
        // Security posture checks (`nfldb security check`) and the security.* settings.
        .target(name: "NFLDBSecurity", dependencies: ["NFLDBCore", "NFLDBPostgres", "NFLDBHealth", logging], swiftSettings: swiftSettings),
        // pgBackRest wrapper and restore verification: `nfldb backup …`.
        .target(name: "NFLDBBackup", dependencies: ["NFLDBCore", "NFLDBPostgres", "NFLDBPgBackRest", "NFLDBSandbox", logging], swiftSettings: swiftSettings),
        // AWS Secrets Manager over HTTPS with SigV4 (libcrypto HMAC): the `aws-sm:` secret scheme and rotation.
        .target(name: "NFLDBAWSSecrets", dependencies: ["NFLDBCore", "NFLDBHTTP", "CLibCrypto"], swiftSettings: swiftSettings),
        // `nfldb roles rotate`: the four-step Secrets Manager rotation of a role's password.
        .target(name: "NFLDBSecretRotation", dependencies: ["NFLDBAWSSecrets", "NFLDBRoles", "NFLDBPostgres", "NFLDBCore", logging], swiftSettings: swiftSettings),
        // Alert delivery and state between cron runs: `nfldb health --alert`.
        .target(name: "NFLDBAlerting", dependencies: ["NFLDBCore", "NFLDBHTTP", logging], swiftSettings: swiftSettings),
        // Fernet field encryption (libcrypto AES-128-CBC + HMAC-SHA256): `nfldb crypt …`.
        .target(name: "NFLDBFernet", dependencies: ["NFLDBCore", "CLibCrypto"], swiftSettings: swiftSettings),
        // Re-encrypting a column in batches: `nfldb crypt rotate`.
        .target(name: "NFLDBCrypt", dependencies: ["NFLDBFernet", "NFLDBCore", "NFLDBPostgres", logging], swiftSettings: swiftSettings),
        // ETL: streaming CSV, data contracts, idempotent loads: `nfldb etl …`.
        .target(name: "NFLDBETL", dependencies: ["NFLDBHTTP", "CLibCrypto", "NFLDBCore", "NFLDBPostgres", logging], swiftSettings: swiftSettings),
        // Shared fixtures; only test targets import it.
        .target(
            name: "NFLDBTestSupport",
            dependencies: ["NFLDBCore", "NFLDBPostgres", "NFLDBSandbox", logging],
            swiftSettings: swiftSettings
        ),
        // A throwaway redis-server for tests.
        .target(
            name: "NFLDBRedisTestSupport",
            dependencies: ["NFLDBRedis", "NFLDBTestSupport", "NFLDBCore", logging],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "nfldb",
            dependencies: ["NFLDBCore", "NFLDBPostgres", "NFLDBSandbox", "NFLDBMigrations", "NFLDBRoles", "NFLDBAudit", "NFLDBHealth", "NFLDBAlerting", "NFLDBBackup", "NFLDBPgBackRest", "NFLDBFernet", "NFLDBCrypt", "NFLDBSecurity", "NFLDBETL", "NFLDBAWSSecrets", "NFLDBSecretRotation", "NFLDBQueue", "NFLDBQueueMetrics", argumentParser, logging],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBAWSSecretsTests",
            dependencies: ["NFLDBAWSSecrets", "NFLDBSecretRotation", "NFLDBRoles", "NFLDBFernet", "NFLDBQueue", "NFLDBRedis", "NFLDBRedisTestSupport", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore", logging],
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "NFLDBCoreTests", dependencies: ["NFLDBCore", logging], swiftSettings: swiftSettings),
        .testTarget(
            name: "NFLDBPostgresTests",
            dependencies: ["NFLDBPostgres", "NFLDBTestSupport", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBSandboxTests",
            dependencies: ["NFLDBSandbox", "NFLDBPgBackRest", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBMigrationsTests",
            dependencies: ["NFLDBMigrations", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBRolesTests",
            dependencies: ["NFLDBRoles", "NFLDBMigrations", "NFLDBBackup", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBAuditTests",
            dependencies: ["NFLDBAudit", "NFLDBRoles", "NFLDBMigrations", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBHealthTests",
            dependencies: ["NFLDBHealth", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore", "NFLDBSandbox"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBAlertingTests",
            dependencies: ["NFLDBAlerting", "NFLDBHealth", "NFLDBTestSupport", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBBackupTests",
            dependencies: ["NFLDBBackup", "NFLDBPgBackRest", "NFLDBHealth", "NFLDBTestSupport", "NFLDBSandbox", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBSecurityTests",
            dependencies: ["NFLDBSecurity", "NFLDBHealth", "NFLDBTestSupport", "NFLDBSandbox", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBRedisTests",
            dependencies: ["NFLDBRedis", "NFLDBRedisTestSupport", "NFLDBTestSupport", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBQueueTests",
            dependencies: ["NFLDBQueue", "NFLDBQueueMetrics", "NFLDBHealth", "NFLDBRedis", "NFLDBRedisTestSupport", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBFernetTests",
            dependencies: ["NFLDBFernet", "NFLDBCrypt", "nfldb", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBHTTPTests",
            dependencies: ["NFLDBHTTP", "NFLDBTestSupport", "NFLDBCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBETLTests",
            dependencies: ["NFLDBETL", "NFLDBHealth", "NFLDBMigrations", "NFLDBRoles", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore", "NFLDBAudit"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "NFLDBCLITests",
            dependencies: ["nfldb", "NFLDBTestSupport", "NFLDBPostgres", "NFLDBCore", "NFLDBRedisTestSupport"],
            swiftSettings: swiftSettings
        ),
    ],
    swiftLanguageModes: [.v6]
)
