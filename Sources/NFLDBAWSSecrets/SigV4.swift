import CLibCrypto
import Foundation
import NFLDBCore

/// AWS credentials: an access key, its secret, and for temporary credentials a session token.
/// `description` never shows the secret key.
public struct AWSCredentials: Sendable, CustomStringConvertible {
    public let accessKeyID: String
    public let secretAccessKey: String
    public let sessionToken: String?
    /// Where they came from (`environment`, `~/.aws/credentials [prod]`), for error messages.
    public let source: String

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil, source: String = "given") {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.source = source
    }

    public var description: String { "access key \(accessKeyID) from \(source)" }
}

/// AWS Signature Version 4 for a JSON-protocol request (one POST to `/`, no query string).
///
/// Only the headers passed in plus `host`, `x-amz-date` and `x-amz-security-token` are signed, as
/// botocore's `SigV4Auth` does for the same request; the signature is checked against botocore in
/// the tests. The derived signing key is never stored or printed.
public struct SigV4Signer: Sendable {
    public let credentials: AWSCredentials
    public let region: String
    public let service: String

    public init(credentials: AWSCredentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// The headers to send: `headers` plus `Host`, `X-Amz-Date`, `X-Amz-Security-Token` and `Authorization`.
    public func sign(method: String, url: URL, headers: [String: String], body: [UInt8], date: Date = Date()) -> [String: String] {
        let (amzDate, dateStamp) = Self.timestamps(date)
        var all = headers
        all["Host"] = Self.hostHeader(url)
        all["X-Amz-Date"] = amzDate
        if let token = credentials.sessionToken { all["X-Amz-Security-Token"] = token }

        let canonical = all.map { (name: $0.key.lowercased(), value: $0.value.trimmingCharacters(in: .whitespaces)) }
            .sorted { $0.name < $1.name }
        let canonicalHeaders = canonical.map { "\($0.name):\($0.value)\n" }.joined()
        let signedHeaders = canonical.map(\.name).joined(separator: ";")
        let path = url.path.isEmpty ? "/" : url.path
        let canonicalRequest = [method, path, url.query ?? "", canonicalHeaders, signedHeaders, SHA256Digest.hex(body)].joined(separator: "\n")
        let scope = "\(dateStamp)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, SHA256Digest.hex(Array(canonicalRequest.utf8))].joined(separator: "\n")

        var key = Self.hmac(Array("AWS4\(credentials.secretAccessKey)".utf8), Array(dateStamp.utf8))
        for part in [region, service, "aws4_request"] { key = Self.hmac(key, Array(part.utf8)) }
        let signature = Self.hmac(key, Array(stringToSign.utf8)).map { String(format: "%02x", $0) }.joined()
        all["Authorization"] = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(signedHeaders), Signature=\(signature)"
        return all
    }

    /// `host` or `host:port` when the port is not the scheme's default (the value signed and sent).
    static func hostHeader(_ url: URL) -> String {
        let host = url.host ?? ""
        guard let port = url.port else { return host }
        if (url.scheme == "https" && port == 443) || (url.scheme == "http" && port == 80) { return host }
        return "\(host):\(port)"
    }

    static func timestamps(_ date: Date) -> (amzDate: String, dateStamp: String) {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let amzDate = formatter.string(from: date)
        return (amzDate, String(amzDate.prefix(8)))
    }

    /// HMAC-SHA256 through libcrypto's one-shot `HMAC`.
    static func hmac(_ key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, &out, &length)
            }
        }
        precondition(ok != nil && length == 32, "libcrypto HMAC-SHA256 failed")
        return Array(out.prefix(32))
    }
}
