import Foundation
import NFLDBCore

/// libpq's `sslmode` values, weakest first.
public enum SSLMode: String, Sendable, CaseIterable, Codable {
    case disable
    case allow
    case prefer
    case require
    case verifyCA = "verify-ca"
    case verifyFull = "verify-full"

    /// Whether libpq checks the server certificate (chain, and for verify-full the host name).
    public var verifiesPeer: Bool { self == .verifyCA || self == .verifyFull }

    /// What an attacker on the network path can do with this mode (nil for verify-full).
    public var risk: String? {
        switch self {
        case .disable:
            return "no encryption: the password exchange and every row cross the network in plaintext, readable and changeable by anyone on the path"
        case .allow, .prefer:
            return "opportunistic TLS: an attacker on the path can force a plaintext connection (downgrade) and then read or change everything"
        case .require:
            return "encrypted but the server is not authenticated: anyone on the path can impersonate the server (man in the middle) and read everything"
        case .verifyCA:
            return "the certificate chain is checked but not the host name: any server holding a certificate from the same CA can impersonate this one"
        case .verifyFull:
            return nil
        }
    }
}

/// How nfldb will use TLS for one set of ``ConnectionOptions``, decided before connecting.
///
/// Rule: a TCP host that is not loopback (127.0.0.0/8, ::1, `localhost`) and not a Unix socket gets
/// `sslmode=verify-full` unless the DSN or `PGSSLMODE` sets a mode; an explicit weaker mode is kept
/// with a warning naming the risk, or refused when ``ConnectionOptions/requireTLS`` is set. With a
/// multi-host DSN every host is judged; one remote host is enough (libpq has one sslmode for all).
public struct TLSPlan: Sendable, Equatable {
    /// The mode given explicitly (DSN or PGSSLMODE), nil when none.
    public var explicitMode: SSLMode?
    /// Where the explicit mode came from: `dsn` or `PGSSLMODE`.
    public var explicitSource: String?
    /// Hosts that are neither loopback nor a Unix socket, as written.
    public var remoteHosts: [String]
    /// True when nfldb adds `sslmode=verify-full` itself.
    public var upgradesToVerifyFull: Bool
    /// The warning to log (explicit weak mode towards a remote host), nil when none.
    public var warning: String?

    /// The mode libpq will use: the explicit one, verify-full when upgraded, else libpq's default (`prefer`).
    public var effectiveMode: SSLMode { explicitMode ?? (upgradesToVerifyFull ? .verifyFull : .prefer) }
}

extension ConnectionOptions {
    /// Decides the TLS mode (see ``TLSPlan``) without connecting.
    ///
    /// - Throws: ``PostgresError`` when ``requireTLS`` is set and an explicit mode weaker than
    ///   verify-full would be used towards a non-loopback host; or when the DSN cannot be parsed.
    public func tlsPlan(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> TLSPlan {
        let (pairs, _) = try parsedDSN()
        func value(_ key: String) -> String? { pairs.last { $0.0 == key }?.1 }
        var explicit: (SSLMode, String)?
        if let text = value("sslmode"), !text.isEmpty {
            guard let mode = SSLMode(rawValue: text) else {
                throw PostgresError(kind: .configuration, message: "invalid sslmode '\(text)' in the connection string")
                    .withHint("Use one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")); verify-full is the safe one.")
            }
            explicit = (mode, "dsn")
        } else if let text = environment["PGSSLMODE"], !text.isEmpty {
            guard let mode = SSLMode(rawValue: text) else {
                throw PostgresError(kind: .configuration, message: "invalid PGSSLMODE '\(text)'")
                    .withHint("Use one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", ")), or unset PGSSLMODE.")
            }
            explicit = (mode, "PGSSLMODE")
        }
        let hosts = Self.hostList(host: value("host") ?? environment["PGHOST"], hostaddr: value("hostaddr") ?? environment["PGHOSTADDR"])
        let remote = hosts.filter { !Self.isLocal($0) }
        var plan = TLSPlan(
            explicitMode: explicit?.0, explicitSource: explicit?.1, remoteHosts: remote,
            upgradesToVerifyFull: explicit == nil && !remote.isEmpty, warning: nil)
        if let (mode, source) = explicit, !remote.isEmpty, let risk = mode.risk {
            let text = "sslmode=\(mode.rawValue) (from \(source)) for non-loopback host \(remote.joined(separator: ", ")): \(risk)"
            if requireTLS {
                throw PostgresError(kind: .configuration, message: "refusing to connect: security.require_tls is set and \(text)")
                    .withHint("Use sslmode=verify-full with sslrootcert=<the CA file that signed the server certificate>, or remove the weaker sslmode from the \(source == "dsn" ? "DSN" : "environment").")
            }
            plan.warning = text + "; use sslmode=verify-full with sslrootcert=<CA file> (security.require_tls: true turns this into an error)"
        }
        return plan
    }

    /// Each host of a (multi-host) conninfo, as written: `host` entries, with `hostaddr` filling
    /// empty ones; an empty or missing list is the default Unix socket.
    static func hostList(host: String?, hostaddr: String?) -> [String] {
        let names = (host ?? "").split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let addresses = (hostaddr ?? "").split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let count = max(names.count, addresses.count)
        var result: [String] = []
        for index in 0..<count {
            let name = index < names.count ? names[index] : ""
            let address = index < addresses.count ? addresses[index] : ""
            // With both set, libpq connects to hostaddr; host is only the name checked in the certificate.
            let target = address.isEmpty ? name : address
            if !target.isEmpty { result.append(target) }
        }
        return result
    }

    /// Loopback (127.0.0.0/8, ::1, `localhost`) or a Unix-domain socket (a path or `@abstract`).
    public static func isLocal(_ host: String) -> Bool {
        let lowered = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if lowered.isEmpty || lowered.hasPrefix("/") || lowered.hasPrefix("@") { return true }
        if lowered == "localhost" || lowered == "localhost." || lowered == "::1" || lowered == "0:0:0:0:0:0:0:1" { return true }
        let octets = lowered.split(separator: ".")
        if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }), octets[0] == "127" { return true }
        return false
    }
}
