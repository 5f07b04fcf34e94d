import Foundation
import NFLDBCore
import NFLDBPostgres

/// Days until the server certificate expires, read from this connection's TLS session (the
/// certificate the server actually presents, not a file that may differ from the loaded one).
/// Without TLS there is nothing to read: OK with the reason (the posture check's `ssl` finding and
/// `tls_connections` judge plaintext); a TLS session whose certificate cannot be read is UNKNOWN.
public struct TLSCertificateProbe: Probe {
    public init() {}
    public let name = "tls_certificate"
    public let summary = "days until the server certificate (from this connection's TLS session) expires"
    public let unit = HealthUnit.days
    public let defaultThresholds = Thresholds(warning: 30, critical: 7, direction: .lowerIsWorse)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let tls = context.connection.tlsSession
        guard tls.inUse else {
            return ProbeOutcome(
                status: .ok,
                message: "not checked: this connection does not use TLS (sslmode=\(tls.sslMode)), so no server certificate was presented",
                hint: "Connect nfldb health with sslmode=verify-full (TCP, with sslrootcert) to watch the certificate's expiry.")
        }
        guard let notAfter = tls.peerNotAfter else {
            return .unknown(
                "TLS is in use (\(tls.protocolVersion ?? "?")) but the server certificate could not be read from the session",
                hint: "Check the certificate by hand: openssl s_client -starttls postgres -connect <host>:<port> | openssl x509 -noout -enddate")
        }
        let days = (notAfter.timeIntervalSinceNow / 86_400).rounded(.down)
        let status = context.thresholds.status(for: days)
        let date = ISO8601DateFormatter().string(from: notAfter)
        let subject = tls.peerSubject ?? "?"
        let message = days < 0
            ? "the server certificate \(subject) expired on \(date)"
            : "the server certificate \(subject) expires in \(HealthUnit.days.format(days)) (\(date))"
        let hint = status == .ok ? nil
            : "Renew the server certificate (ssl_cert_file/ssl_key_file in postgresql.conf), then SELECT pg_reload_conf(); "
                + "clients with sslmode=verify-full refuse an expired certificate."
        return ProbeOutcome(
            status: status, value: days, message: message, hint: hint,
            details: [Detail([
                ("subject", .string(subject)), ("not_after", .string(date)), ("protocol", .text(tls.protocolVersion)),
                ("cipher", .text(tls.cipher)), ("verified", .bool(tls.verified)),
            ])],
            metrics: [HealthMetric(
                "tls_certificate_expiry_seconds", help: "Seconds until the server certificate expires (negative: expired).",
                value: notAfter.timeIntervalSinceNow)])
    }
}

/// Client connections from outside `health.checks.tls_connections.local_networks` that do not use
/// TLS (`pg_stat_ssl` joined to `pg_stat_activity`): passwords and rows crossing the network in
/// plaintext. Unix-socket clients never count.
public struct TLSConnectionsProbe: Probe {
    public init() {}
    public let name = "tls_connections"
    public let summary = "non-local client connections without TLS (pg_stat_ssl, pg_stat_activity)"
    public let unit = HealthUnit.count
    public let defaultThresholds = Thresholds(warning: 1, critical: nil)

    public func run(_ context: ProbeContext) throws -> ProbeOutcome {
        let canSeeAll: Bool = try context.row("""
            SELECT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)
                   OR pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS ok
            """, "privileges").decode("ok")
        guard canSeeAll else {
            return .unknown(
                "\(context.server.user) cannot see other sessions' client addresses in pg_stat_activity",
                hint: "GRANT pg_monitor TO \(context.server.user); (pg_read_all_stats is enough).")
        }
        let networks = "{" + (context.settings.value(.healthTLSLocalNetworks) ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: ",") + "}"
        let rows = try context.rows("""
            SELECT a.pid, a.usename, a.datname, host(a.client_addr) AS client, a.application_name
            FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
            WHERE a.backend_type = 'client backend' AND a.client_addr IS NOT NULL AND NOT s.ssl
              AND NOT (a.client_addr <<= ANY (\(networks)::cidr[]))
            ORDER BY a.backend_start
            """)
        let details = rows.map { row in
            Detail([
                ("pid", .text(row["pid"])), ("user", .text(row["usename"])), ("database", .text(row["datname"])),
                ("client", .text(row["client"])), ("application", .text(row["application_name"])),
            ])
        }
        guard let first = rows.first else {
            return ProbeOutcome(status: .ok, value: 0, message: "every non-local client connection uses TLS")
        }
        let count = Double(rows.count)
        return ProbeOutcome(
            status: context.thresholds.status(for: count), value: count,
            message: "\(rows.count) client connection\(rows.count == 1 ? "" : "s") without TLS from outside \(networks), e.g. "
                + "\(first["usename"] ?? "?")@\(first["client"] ?? "?") (\(first["application_name"] ?? "")): passwords and rows cross the network in plaintext",
            hint: "Make clients use sslmode=verify-full, then enforce it on the server: hostssl lines in pg_hba.conf and "
                + "`hostnossl all all 0.0.0.0/0 reject` (and ::/0) before them; SELECT pg_reload_conf().",
            details: details)
    }
}
