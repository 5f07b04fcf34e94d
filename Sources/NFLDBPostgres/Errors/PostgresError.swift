import Foundation
import NFLDBCore

/// An error from libpq or from the server, with everything PostgreSQL said about it.
///
/// `description` renders summary, detail and hint for an operator; bound parameter values are never
/// included, and connection targets are printed without passwords.
public struct PostgresError: NFLDBError, Sendable {
    /// What kind of failure this is; a struct so new kinds can be added without breaking callers.
    public struct Kind: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public static let connection = Kind(name: "connection")
        public static let server = Kind(name: "server")
        public static let protocolViolation = Kind(name: "protocol")
        public static let decoding = Kind(name: "decoding")
        public static let unexpectedShape = Kind(name: "unexpected result shape")
        public static let copy = Kind(name: "copy")
        public static let lockNotAvailable = Kind(name: "lock not available")
        /// libpq refused a connection setting before connecting (`sslmode=bogus`, `port=abc`): exit 2.
        public static let configuration = Kind(name: "configuration")
        public var description: String { name }
    }

    public var kind: Kind
    /// The five-character SQLSTATE (`42P01`), when the server sent one.
    public var sqlState: String?
    /// `ERROR`, `FATAL`, `PANIC` (non-localized severity).
    public var severity: String?
    public var message: String
    public var detail: String?
    public var hint: String?
    /// 1-based character offset into the statement (`PG_DIAG_STATEMENT_POSITION`).
    public var position: Int?
    /// `PG_DIAG_CONTEXT`: e.g. the PL/pgSQL line.
    public var context: String?
    public var schemaName: String?
    public var tableName: String?
    public var columnName: String?
    public var constraintName: String?
    /// The SQL text that failed (never the bound values).
    public var statement: String?
    /// For scripts: where the failing statement sits, e.g. `migrations/0003_weather.up.sql:12`.
    public var location: String?
    /// Redacted connection target (`127.0.0.1:5432 db=nfl user=etl`).
    public var target: String?

    /// A connection setting libpq refuses is a configuration error (2); everything else a failure (1).
    public var exitStatus: ExitStatus { kind == .configuration ? .usage : .failure }

    public init(kind: Kind, message: String, sqlState: String? = nil) {
        self.kind = kind
        self.message = message
        self.sqlState = sqlState
    }

    public var diagnostic: Diagnostic {
        var summary = message
        if let location { summary = "\(location): \(summary)" }
        var facts: [String] = []
        if let sqlState { facts.append("SQLSTATE \(sqlState)") }
        if let detail { facts.append(detail) }
        if let tableName {
            var object = schemaName.map { "\($0).\(tableName)" } ?? tableName
            if let columnName { object += ".\(columnName)" }
            facts.append("table \(object)")
        } else if let columnName {
            facts.append("column \(columnName)")
        }
        if let constraintName { facts.append("constraint \(constraintName)") }
        if let context { facts.append("context: \(context.replacingOccurrences(of: "\n", with: " / "))") }
        if let statement, kind != .connection {
            let oneLine = statement.split(whereSeparator: \.isNewline).joined(separator: " ")
            let clipped = oneLine.count > 200 ? String(oneLine.prefix(200)) + "…" : oneLine
            facts.append("statement: \(clipped)")
        }
        return Diagnostic(summary, detail: facts.isEmpty ? nil : facts.joined(separator: "; "), hint: hint)
    }

    /// True for the SQLSTATE class given as two characters (`"23"` = integrity violation).
    public func isClass(_ prefix: String) -> Bool { sqlState?.hasPrefix(prefix) ?? false }
}

/// Named SQLSTATEs nfldb branches on.
public enum SQLState {
    public static let uniqueViolation = "23505"
    public static let lockNotAvailable = "55P03"
    public static let queryCanceled = "57014"
    public static let undefinedTable = "42P01"
    public static let undefinedObject = "42704"
    public static let duplicateObject = "42710"
    public static let duplicateDatabase = "42P04"
    public static let insufficientPrivilege = "42501"
    public static let deadlockDetected = "40P01"
    public static let serializationFailure = "40001"
    public static let objectInUse = "55006"
    public static let adminShutdown = "57P01"
    public static let cannotConnectNow = "57P03"
}
