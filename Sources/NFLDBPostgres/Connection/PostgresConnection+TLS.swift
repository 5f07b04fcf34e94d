import CLibPQ
import CLibSSL
import Foundation
import NFLDBCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The TLS state of an open connection (`PQsslInUse`, `PQsslAttribute`, the peer certificate).
public struct TLSSession: Sendable, Codable, Equatable {
    public var inUse: Bool
    /// `TLSv1.3`…; nil without TLS.
    public var protocolVersion: String?
    public var cipher: String?
    /// The sslmode libpq used (from `PQconninfo`).
    public var sslMode: String
    /// TLS is in use and sslmode is verify-ca or verify-full: libpq checked the chain (and for
    /// verify-full the host name) before the connection succeeded.
    public var verified: Bool
    /// The server certificate's subject and expiry, read from the session.
    public var peerSubject: String?
    public var peerNotAfter: Date?
}

extension PostgresConnection {
    /// TLS facts of this connection, read locally without a round trip.
    public var tlsSession: TLSSession {
        let inUse = PQsslInUse(handle) == 1
        let mode = Self.conninfoValue(handle, "sslmode") ?? "prefer"
        var session = TLSSession(
            inUse: inUse, protocolVersion: inUse ? PQsslAttribute(handle, "protocol").map { String(cString: $0) } : nil,
            cipher: inUse ? PQsslAttribute(handle, "cipher").map { String(cString: $0) } : nil, sslMode: mode,
            verified: inUse && (SSLMode(rawValue: mode)?.verifiesPeer ?? false), peerSubject: nil, peerNotAfter: nil)
        if inUse, let raw = PQsslStruct(handle, "OpenSSL") {
            let ssl = OpaquePointer(raw)
            if let certificate = SSL_get1_peer_certificate(ssl) {
                defer { X509_free(certificate) }
                session.peerNotAfter = Self.date(X509_get0_notAfter(certificate))
                var buffer = [CChar](repeating: 0, count: 512)
                if X509_NAME_oneline(X509_get_subject_name(certificate), &buffer, Int32(buffer.count)) != nil {
                    session.peerSubject = String(cString: buffer)
                }
            }
        }
        return session
    }

    /// An ASN1_TIME as a Date (via `ASN1_TIME_diff` from now, which handles both UTCTime and GeneralizedTime).
    static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date? {
        guard let time else { return nil }
        var days: Int32 = 0
        var seconds: Int32 = 0
        let now = Date()
        guard ASN1_TIME_diff(&days, &seconds, nil, time) == 1 else { return nil }
        return now.addingTimeInterval(Double(days) * 86_400 + Double(seconds))
    }

    static func conninfoValue(_ conn: OpaquePointer, _ key: String) -> String? {
        guard let options = PQconninfo(conn) else { return nil }
        defer { PQconninfoFree(options) }
        var index = 0
        while let keyword = options[index].keyword {
            if String(cString: keyword) == key, let value = options[index].val { return String(cString: value) }
            index += 1
        }
        return nil
    }
}

/// Which TLS problem stopped a connection, and the setting that fixes it.
public struct TLSFailure: Sendable, Equatable {
    public enum Reason: String, Sendable { case unknownCA = "unknown CA", hostMismatch = "host name mismatch", expired = "expired certificate", notYetValid = "certificate not yet valid", serverWithoutTLS = "server without TLS", serverRequiresTLS = "server requires TLS", otherVerification = "certificate verification failed" }
    public var reason: Reason
    public var what: String
    public var fix: String

    /// Classifies libpq's error text; for "certificate verify failed" (all libpq 15 says) it
    /// repeats the handshake itself to read OpenSSL's verification result.
    static func diagnose(_ raw: String, conn: OpaquePointer) -> TLSFailure? {
        let text = raw.replacingOccurrences(of: "\n", with: " ")
        let home = FileManager.default.homeDirectoryForCurrentUser.path
        let rootCert = PostgresConnection.conninfoValue(conn, "sslrootcert").flatMap { $0.isEmpty ? nil : $0 }
            ?? ProcessInfo.processInfo.environment["PGSSLROOTCERT"] ?? "\(home)/.postgresql/root.crt"
        let caFix = "Set sslrootcert=<file with the CA certificate that signed the server certificate> in the DSN (or PGSSLROOTCERT); "
            + "get the CA file from the server's operator, not from the connection itself."
        if text.contains("root certificate file") && text.contains("does not exist") {
            return TLSFailure(
                reason: .unknownCA, what: "unknown CA: no root certificate to verify the server with (sslrootcert \(rootCert) does not exist)", fix: caFix)
        }
        if text.contains("does not match host name") {
            return TLSFailure(
                reason: .hostMismatch, what: "host name mismatch: the server certificate is not issued for the host name connected to",
                fix: "Connect with host=<a name in the certificate's subjectAltName> (add hostaddr=<IP> if DNS differs), or reissue the "
                    + "server certificate with this host name in its subjectAltName. Do not fall back to sslmode=verify-ca/require.")
        }
        if text.contains("server does not support SSL") {
            return TLSFailure(
                reason: .serverWithoutTLS, what: "server without TLS: the server does not offer TLS",
                fix: "On the server set ssl = on with ssl_cert_file and ssl_key_file in postgresql.conf and reload (SELECT pg_reload_conf()).")
        }
        if text.contains("no encryption") && text.contains("no pg_hba.conf entry") {
            // libpq 15 says "no encryption" for every plaintext attempt: either only hostssl lines
            // would match, or no line does at all (a server with ssl = off can only be the latter).
            return TLSFailure(
                reason: .serverRequiresTLS, what: "pg_hba.conf has no rule for this plaintext connection (only hostssl lines match it, or none does)",
                fix: "If no line is meant for this host, user and database, add one to pg_hba.conf and reload (SELECT pg_reload_conf()); "
                    + "if only hostssl lines are, connect with sslmode=verify-full and sslrootcert=<CA file> (the server needs ssl = on).")
        }
        if text.contains("no encryption") && text.contains("rejects connection") {
            let rule = "pg_hba.conf rejects plaintext from this client (hostnossl … reject)"
            return TLSFailure(
                reason: .serverRequiresTLS, what: "server requires TLS: \(rule), and the connection was plaintext",
                fix: "Remove sslmode=disable (DSN or PGSSLMODE) and connect with sslmode=verify-full and sslrootcert=<CA file>.")
        }
        if text.contains("certificate verify failed") {
            let host = PQhost(conn).map { String(cString: $0) } ?? "localhost"
            let address = PQhostaddr(conn).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
            let port = PQport(conn).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "5432"
            let code = TLSProbe.verifyResult(host: address ?? host, port: port, rootCert: rootCert)
            switch code {
            case X509_V_ERR_CERT_HAS_EXPIRED:
                return TLSFailure(
                    reason: .expired, what: "expired certificate: the server certificate's validity period has ended",
                    fix: "Renew the server certificate (ssl_cert_file on the server; check it with openssl x509 -enddate -noout -in <file>) "
                        + "and reload the server (SELECT pg_reload_conf()).")
            case X509_V_ERR_CERT_NOT_YET_VALID:
                return TLSFailure(
                    reason: .notYetValid, what: "certificate not yet valid: its notBefore is in the future",
                    fix: "Check the clocks of client and server (NTP), or reissue the certificate with a correct start date.")
            case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
                 X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT, X509_V_ERR_CERT_SIGNATURE_FAILURE:
                return TLSFailure(
                    reason: .unknownCA, what: "unknown CA: the server certificate is not signed by a CA in sslrootcert (\(rootCert))", fix: caFix)
            case let code?:
                let reason = X509_verify_cert_error_string(Int(code)).map { String(cString: $0) } ?? "code \(code)"
                return TLSFailure(reason: .otherVerification, what: "certificate verification failed: \(reason)", fix: caFix)
            case nil:
                return TLSFailure(
                    reason: .otherVerification, what: "certificate verification failed (unknown CA or expired certificate; the server could not be re-checked)",
                    fix: caFix + " If the CA is right, check the certificate's dates with openssl x509 -dates -noout -in <server cert>.")
            }
        }
        return nil
    }
}

/// A second, diagnostic TLS handshake: the PostgreSQL SSLRequest, then OpenSSL with verification
/// recorded but not enforced, to read `SSL_get_verify_result`. Nothing is sent after the handshake.
enum TLSProbe {
    static func verifyResult(host: String, port: String, rootCert: String) -> Int32? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, port, &hints, &list) == 0, let first = list else { return nil }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else { return nil }
        let request: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]  // length 8, SSLRequest code 80877103
        guard write(fd, request, request.count) == request.count else { return nil }
        var answer: UInt8 = 0
        guard read(fd, &answer, 1) == 1, answer == UInt8(ascii: "S") else { return nil }
        guard let context = SSL_CTX_new(TLS_client_method()) else { return nil }
        defer { SSL_CTX_free(context) }
        SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nil)
        guard SSL_CTX_load_verify_locations(context, rootCert, nil) == 1 else { return nil }
        guard let ssl = SSL_new(context) else { return nil }
        defer { SSL_free(ssl) }
        SSL_set_fd(ssl, fd)
        guard SSL_connect(ssl) == 1 else { return nil }
        let result = SSL_get_verify_result(ssl)
        SSL_shutdown(ssl)
        return Int32(result)
    }
}
