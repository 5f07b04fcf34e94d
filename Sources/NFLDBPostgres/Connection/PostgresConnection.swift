import CLibPQ
import Foundation
import Logging
import NFLDBCore

/// A server notice or warning (`NOTICE: … already exists, skipping`, `WARNING: no privileges were granted`).
public struct PostgresNotice: Sendable, Hashable {
    public let severity: String
    public let sqlState: String?
    public let message: String
    public let detail: String?
    public let hint: String?
}

/// One connection to a PostgreSQL server, owning a libpq `PGconn`.
///
/// **How it may be used:** a `PostgresConnection` is deliberately *not* `Sendable`. libpq forbids two
/// threads using one `PGconn` at once, so the compiler keeps each connection inside the task (or
/// the isolation domain) that opened it. Work that needs several concurrent sessions opens several
/// connections. The only thread-safe piece is ``CancelHandle``, which may be sent to another task
/// to interrupt a running statement (`PQcancel`).
///
/// All calls block the calling thread while libpq talks to the server.
public final class PostgresConnection {
    let handle: OpaquePointer
    public let logger: Logger
    private let notices: NoticeCollector
    private var closed = false
    /// Host, port, database and user of this connection, never the password.
    public let target: String

    private init(handle: OpaquePointer, logger: Logger, notices: NoticeCollector, target: String) {
        self.handle = handle
        self.logger = logger
        self.notices = notices
        self.target = target
    }

    deinit {
        if !closed { PQfinish(handle) }
    }

    /// Opens a connection. The corresponding libpq function is `PQconnectdbParams`.
    ///
    /// - Throws: ``PostgresError`` of kind `.connection` naming host and port (never the password).
    public static func connect(_ options: ConnectionOptions, logger: Logger) throws -> PostgresConnection {
        if let dsn = options.dsn, !dsn.isEmpty { try ConnectionOptions.validate(dsn) }
        let tls = try options.tlsPlan()
        if let warning = tls.warning { logger.warning("\(warning)") }
        let pairs = options.keywordValues(tls: tls)
        let keywords = pairs.map { strdup($0.0) } + [nil]
        let values = pairs.map { strdup($0.1) } + [nil]
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let conn: OpaquePointer? = keywords.withUnsafeBufferPointer { kw in
            values.withUnsafeBufferPointer { vals in
                kw.withMemoryRebound(to: UnsafePointer<CChar>?.self) { kwp in
                    vals.withMemoryRebound(to: UnsafePointer<CChar>?.self) { valp in
                        PQconnectdbParams(kwp.baseAddress, valp.baseAddress, 1)
                    }
                }
            }
        }
        guard let conn else {
            throw PostgresError(kind: .connection, message: "could not allocate a libpq connection (out of memory)")
        }
        let target = describeTarget(conn)
        guard PQstatus(conn) == CONNECTION_OK else {
            let raw = String(cString: PQerrorMessage(conn))
            let tlsFailure = TLSFailure.diagnose(raw, conn: conn)
            PQfinish(conn)
            var error = PostgresError(kind: .connection, message: connectionFailureMessage(raw, target: target))
            error.target = target
            if let tlsFailure {
                error.message += " — TLS: \(tlsFailure.what)"
                error.hint = tlsFailure.fix
                if tls.upgradesToVerifyFull {
                    error.hint! += " (nfldb used sslmode=verify-full because \(tls.remoteHosts.joined(separator: ", ")) is not loopback; "
                        + "an explicit sslmode in the DSN or PGSSLMODE overrides it, with a warning.)"
                }
            } else if let setting = invalidSetting(raw) {
                error.kind = .configuration
                error.hint = "Fix \(setting) in the DSN (or its PG* environment variable, e.g. PGSSLMODE, PGPORT, PGCONNECT_TIMEOUT): "
                    + "libpq refused it before connecting (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS lists the values)."
            } else {
                error.hint = connectionHint(raw)
            }
            throw error
        }
        // A password libpq found itself (~/.pgpass, PGPASSFILE or passfile=) is as secret as one in
        // the DSN: known to the redactor from now on, so a server message quoting it is masked.
        if PQconnectionUsedPassword(conn) == 1, let used = PQpass(conn) {
            SecretRedactor.shared.register(String(cString: used))
        }
        let collector = NoticeCollector(logger: logger)
        PQsetNoticeReceiver(conn, noticeReceiver, Unmanaged.passUnretained(collector).toOpaque())
        let connection = PostgresConnection(handle: conn, logger: logger, notices: collector, target: target)
        // Text results are parsed assuming ISO dates; the server reports DateStyle at startup.
        if let style = connection.parameterStatus("DateStyle"), !style.hasPrefix("ISO") {
            try connection.execute("SET DateStyle = ISO")
        }
        logger.debug("connected", metadata: ["db.target": .string(target), "db.server_version": .string(connection.serverVersion)])
        return connection
    }

    /// Closes the connection now (also done on deinit). The corresponding libpq function is `PQfinish`.
    public func close() {
        guard !closed else { return }
        closed = true
        PQfinish(handle)
    }

    /// `server_version` as the server reports it, e.g. `15.18 (Debian 15.18-0+deb12u1)`.
    public var serverVersion: String { parameterStatus("server_version") ?? "unknown" }

    /// `PQserverVersion`, e.g. 150018.
    public var serverVersionNumber: Int { Int(PQserverVersion(handle)) }

    /// The backend process id (`pg_backend_pid()`), without a round trip.
    public var backendPID: Int32 { PQbackendPID(handle) }

    /// A run-time parameter the server reported (`application_name`, `TimeZone`, `is_superuser`…).
    public func parameterStatus(_ name: String) -> String? {
        PQparameterStatus(handle, name).map { String(cString: $0) }
    }

    /// Whether the connection is inside a transaction block, and whether that block has failed.
    public var transactionState: TransactionState {
        switch PQtransactionStatus(handle) {
        case PQTRANS_IDLE: return .idle
        case PQTRANS_INTRANS: return .inTransaction
        case PQTRANS_INERROR: return .failed
        case PQTRANS_ACTIVE: return .active
        default: return .unknown
        }
    }

    public enum TransactionState: Sendable { case idle, inTransaction, failed, active, unknown }

    /// Whether the connection is still usable (`PQstatus == CONNECTION_OK`).
    public var isAlive: Bool { !closed && PQstatus(handle) == CONNECTION_OK }

    /// Notices and warnings received since the last call; each was also logged at `info`.
    public func drainNotices() -> [PostgresNotice] { notices.drain() }

    /// A handle that can cancel this connection's running statement from another task or a signal handler.
    public func makeCancelHandle() -> CancelHandle? {
        PQgetCancel(handle).map(CancelHandle.init)
    }

    static func describeTarget(_ conn: OpaquePointer) -> String {
        var fields: [String: String] = [:]
        if let options = PQconninfo(conn) {
            var index = 0
            while let keyword = options[index].keyword {
                if let value = options[index].val { fields[String(cString: keyword)] = String(cString: value) }
                index += 1
            }
            PQconninfoFree(options)
        }
        let host = fields["host"].flatMap { $0.isEmpty ? nil : $0 } ?? fields["hostaddr"] ?? "/var/run/postgresql"
        let port = fields["port"].flatMap { $0.isEmpty ? nil : $0 } ?? "5432"
        var text = "\(host):\(port)"
        if let db = fields["dbname"], !db.isEmpty { text += " db=\(db)" }
        if let user = fields["user"], !user.isEmpty { text += " user=\(user)" }
        return SecretRedactor.shared.redact(text)
    }

    /// The connection setting libpq refused before connecting, from its message (fe-connect.c:
    /// `invalid sslmode value: "x"`, `invalid integer value "x" for connection option "port"`,
    /// `invalid port number: "x"`, `invalid channel_binding value`…); nil for any other failure.
    static func invalidSetting(_ raw: String) -> String? {
        let text = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if let option = text.range(of: #"for connection option "([A-Za-z_]+)""#, options: .regularExpression) {
            return String(text[option].split(separator: "\"").dropFirst().first ?? "the setting")
        }
        if text.hasPrefix("invalid port number") { return "port" }
        if text.hasPrefix("could not match "), text.contains("hostaddr") { return "host/hostaddr" }
        if let match = text.range(of: #"^invalid ([A-Za-z_]+) value"#, options: .regularExpression) {
            return String(text[match].split(separator: " ")[1])
        }
        return nil
    }

    /// What to do about a failed connection, from libpq's message.
    static func connectionHint(_ raw: String) -> String {
        if raw.contains("password authentication failed") || raw.contains("no password supplied") || raw.contains("SCRAM") {
            return "Check the user and its password (password_ref, a PGPASSFILE/.pgpass line, or PGPASSWORD); pg_hba.conf decides which method the server asks for."
        }
        if raw.contains("no pg_hba.conf entry") {
            return "The server's pg_hba.conf has no line for this host, user and database: add one (hostssl … scram-sha-256) and reload, or connect as a user that has one."
        }
        if raw.contains("database \""), raw.contains("does not exist") {
            return "Check the database name (dbname in the DSN, or PGDATABASE), or create the database."
        }
        if raw.contains("role \""), raw.contains("does not exist") {
            return "Check the user name (user in the DSN, or PGUSER), or create the role (`nfldb roles apply` for the platform's roles)."
        }
        if raw.contains("could not translate host name") {
            return "The host name does not resolve: check host in the DSN (or PGHOST)."
        }
        return "Check that PostgreSQL is running and accepts connections there (`pg_isready` with the same host and port), "
            + "and that the DSN (or PGHOST/PGPORT) points at it."
    }

    static func connectionFailureMessage(_ raw: String, target: String) -> String {
        let lines = raw.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let reason = lines.joined(separator: " ")
        return SecretRedactor.shared.redact("could not connect to PostgreSQL at \(target): \(reason)")
    }
}

@available(*, unavailable, message: "a PostgresConnection must stay in the task that opened it; open another connection instead")
extension PostgresConnection: Sendable {}

/// Cancels the statement running on a connection. The corresponding libpq function is `PQcancel`,
/// which libpq documents as safe to call from any thread, even a signal handler.
public final class CancelHandle: @unchecked Sendable {
    // Invariant: `cancel` is only passed to PQcancel (thread-safe) and freed once in deinit.
    private let cancel: OpaquePointer

    init(_ cancel: OpaquePointer) { self.cancel = cancel }

    deinit { PQfreeCancel(cancel) }

    /// Asks the server to cancel the current statement; returns whether the request was sent.
    @discardableResult
    public func cancelRunningStatement() -> Bool {
        var buffer = [CChar](repeating: 0, count: 256)
        return PQcancel(cancel, &buffer, Int32(buffer.count)) == 1
    }
}

/// Collects notices from libpq's notice receiver callback (called on the thread using the connection).
final class NoticeCollector {
    private var pending: [PostgresNotice] = []
    let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func add(_ notice: PostgresNotice) {
        pending.append(notice)
        logger.info("server \(notice.severity.lowercased()): \(notice.message)", metadata: [
            "db.sqlstate": .string(notice.sqlState ?? ""),
        ])
    }

    func drain() -> [PostgresNotice] {
        defer { pending.removeAll() }
        return pending
    }
}

private let noticeReceiver: PQnoticeReceiver = { context, result in
    guard let context, let result else { return }
    let collector = Unmanaged<NoticeCollector>.fromOpaque(context).takeUnretainedValue()
    let notice = PostgresNotice(
        severity: resultField(result, "V") ?? resultField(result, "S") ?? "NOTICE",
        sqlState: resultField(result, "C"),
        message: resultField(result, "M") ?? "",
        detail: resultField(result, "D"),
        hint: resultField(result, "H"))
    collector.add(notice)
}

/// Reads a `PG_DIAG_*` field (given as its protocol letter) from a result.
func resultField(_ result: OpaquePointer, _ code: Character) -> String? {
    guard let ascii = code.asciiValue, let value = PQresultErrorField(result, Int32(ascii)) else { return nil }
    return String(cString: value)
}
