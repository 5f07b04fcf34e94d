import Foundation
import NFLDBCore

extension ConfigKey {
    public static let backupStanza = ConfigKey("backup.stanza", .string, default: "nfldb", help: "pgBackRest stanza")
    public static let backupConfig = ConfigKey("backup.config", .path, help: "pgbackrest.conf path passed as --config")
    public static let backupRepoPath = ConfigKey("backup.repo_path", .path, help: "pgBackRest repo1-path")
    public static let backupTables = ConfigKey(
        "backup.tables", .stringList, help: "schema.table names counted in the backup manifest besides every table in schema nfl")
    public static let backupScratchDir = ConfigKey(
        "backup.scratch_dir", .path, help: "where `backup verify` restores: nfldb-verify-<random> in it, removed afterwards (default /var/tmp); with reuse_scratch nfldb-verify-<stanza>, kept (default /var/lib/nfldb)")
    public static let backupReuseScratch = ConfigKey(
        "backup.verify.reuse_scratch", .boolean, default: "false",
        help: "keep the verify copy in <scratch_dir>/nfldb-verify-<stanza> and restore into it with --delta next time")
    public static let backupAmcheckJobs = ConfigKey(
        "backup.verify.amcheck_jobs", .integer, help: "pg_amcheck --jobs for backup verify (default: CPUs, at most 8)")
    public static let backupPageChecksums = ConfigKey(
        "backup.verify.page_checksums", .choice(["backup", "pg_checksums"]), default: "backup",
        help: "how backup verify proves page checksums: backup = pgBackRest's page check at backup time + restore SHA-1 + every page read after restore (no extra pass); pg_checksums = also a full pg_checksums pass on the stopped copy")
    public static let backupRepoVerifyInterval = ConfigKey(
        "backup.verify.repo_verify_interval", .duration, default: "7d",
        help: "run the full `pgbackrest verify` (every repo file) when the last one that passed for this stanza is older than this; 0 = every run")
    public static let backupAmcheckRecheckInterval = ConfigKey(
        "backup.verify.amcheck_recheck_interval", .duration, default: "7d",
        help: "with reuse_scratch: pg_amcheck skips a relation unchanged since a clean check younger than this (same file SHA-1s, untouched by replay, same catalog rows, no open transaction committed since); 0 = check every relation every run")
    public static let backupRepoType = ConfigKey("backup.repo_type", .choice(["posix", "s3"]), default: "posix", help: "pgBackRest repo1-type")
    public static let backupS3Bucket = ConfigKey("backup.s3.bucket", .string, help: "repo1-s3-bucket (repo_type s3)")
    public static let backupS3Endpoint = ConfigKey("backup.s3.endpoint", .string, help: "repo1-s3-endpoint, e.g. s3.us-east-1.amazonaws.com")
    public static let backupS3Region = ConfigKey("backup.s3.region", .string, help: "repo1-s3-region")
    public static let backupS3URIStyle = ConfigKey("backup.s3.uri_style", .choice(["host", "path"]), default: "host", help: "repo1-s3-uri-style (path for MinIO)")
    public static let backupS3KeyEnv = ConfigKey(
        "backup.s3.key_env", .string, help: "environment variables holding the S3 key and secret, as KEY_VAR,SECRET_VAR (unset: IAM role)")
    public static let backupReferenceTables = ConfigKey(
        "backup.reference_tables", .stringList, default: "nfl.teams,nfl.stadiums",
        help: "schema.table names whose full content is checksummed in the manifest and compared by backup verify")
}

/// The `backup:` section of `nfldb.yaml`, decoded. Flags override these in the command.
public struct BackupConfig: Sendable {
    public static let keys: [ConfigKey] = [
        .backupStanza, .backupConfig, .backupRepoPath, .backupTables, .backupScratchDir, .backupReuseScratch, .backupAmcheckJobs,
        .backupPageChecksums, .backupRepoVerifyInterval, .backupAmcheckRecheckInterval,
        .backupReferenceTables, .backupRepoType, .backupS3Bucket, .backupS3Endpoint, .backupS3Region, .backupS3URIStyle, .backupS3KeyEnv,
    ]

    public var stanza: String
    /// The pgbackrest.conf path; nil when unset (commands that need it refuse with a hint).
    public var configPath: String?
    public var repoPath: String?
    public var repoType: String
    public var s3Bucket: String?
    public var s3Endpoint: String?
    public var s3Region: String?
    public var s3URIStyle: String
    public var s3KeyEnv: String?
    public var scratchDirectory: String?
    public var reuseScratch: Bool
    public var amcheckJobs: Int?
    /// `backup.verify.page_checksums`.
    public var pageChecksums: PageChecksumMode
    /// `backup.verify.repo_verify_interval` (zero: every run).
    public var repoVerifyInterval: Duration
    /// `backup.verify.amcheck_recheck_interval` (zero: never skip).
    public var amcheckRecheckInterval: Duration
    /// The tables the manifest counts (every table in schema nfl plus `backup.tables`) and checksums.
    public var tables: ManagedTables

    public init(configuration: Configuration) throws {
        stanza = configuration.defaulted(.backupStanza)
        configPath = configuration.string(.backupConfig)
        repoPath = configuration.string(.backupRepoPath)
        repoType = configuration.defaulted(.backupRepoType)
        s3Bucket = configuration.string(.backupS3Bucket)
        s3Endpoint = configuration.string(.backupS3Endpoint)
        s3Region = configuration.string(.backupS3Region)
        s3URIStyle = configuration.defaulted(.backupS3URIStyle)
        s3KeyEnv = configuration.string(.backupS3KeyEnv)
        scratchDirectory = configuration.string(.backupScratchDir)
        reuseScratch = try configuration.boolean(.backupReuseScratch) ?? false
        amcheckJobs = try configuration.integer(.backupAmcheckJobs, atLeast: 1)
        pageChecksums = PageChecksumMode(rawValue: configuration.defaulted(.backupPageChecksums)) ?? .backup
        repoVerifyInterval = try configuration.duration(.backupRepoVerifyInterval) ?? VerifyOptions.defaultRepoVerifyInterval
        amcheckRecheckInterval = try configuration.duration(.backupAmcheckRecheckInterval) ?? VerifyOptions.defaultAmcheckRecheckInterval
        tables = ManagedTables(schemas: ["nfl"], tables: configuration.list(.backupTables), reference: configuration.list(.backupReferenceTables))
    }
}

extension VerifyOptions {
    /// The `backup.verify.*` settings that shape a run (reuse, amcheck jobs, page checksums, repo
    /// verify interval); flags given on the command line override them afterwards.
    public mutating func apply(_ settings: BackupConfig) {
        reuseScratch = settings.reuseScratch
        if let jobs = settings.amcheckJobs { amcheckJobs = max(1, jobs) }
        pageChecksums = settings.pageChecksums
        repoVerifyInterval = settings.repoVerifyInterval
        amcheckRecheckInterval = settings.amcheckRecheckInterval
    }
}
