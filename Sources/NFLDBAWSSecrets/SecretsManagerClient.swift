import Foundation
import NFLDBCore
import NFLDBHTTP

/// A failed Secrets Manager call: the operation, the secret, the HTTP status and AWS error code.
/// The message never contains a secret value or the signing key.
public struct SecretsManagerError: NFLDBError, Sendable {
    public let operation: String
    public let secretID: String
    /// HTTP status, or nil when no response came (timeout, refused).
    public let status: Int?
    /// AWS error code (`ResourceNotFoundException`, `SignatureDoesNotMatch`), when the service gave one.
    public let code: String?
    public let diagnostic: Diagnostic

    init(operation: String, secretID: String, status: Int?, code: String?, message: String, hint: String) {
        self.operation = operation
        self.secretID = secretID
        self.status = status
        self.code = code
        let what = status.map { "HTTP \($0)" + (code.map { " \($0)" } ?? "") } ?? "no response"
        diagnostic = Diagnostic("Secrets Manager \(operation) for '\(secretID)' failed: \(what)", detail: message.isEmpty ? nil : message, hint: hint)
    }
}

/// One version of a secret as `GetSecretValue` returns it.
public struct SecretValue: Sendable {
    public let versionID: String
    public let stages: [String]
    public let string: String
}

/// The Secrets Manager JSON API over HTTP(S), signed with SigV4: the calls nfldb needs to read a
/// secret and to rotate one (the four-step AWSPENDING → AWSCURRENT protocol).
public struct SecretsManagerClient: Sendable {
    public let endpoint: URL
    public let signer: SigV4Signer
    public let timeout: TimeInterval

    public init(endpoint: URL, signer: SigV4Signer, timeout: TimeInterval = 10) {
        self.endpoint = endpoint
        self.signer = signer
        self.timeout = timeout
    }

    /// From the standard AWS environment (credentials chain, region, endpoint override).
    public init(environment: [String: String], timeout: TimeInterval = 10) throws {
        let region = try AWSEnvironment.region(environment)
        let credentials = try AWSEnvironment.credentials(environment)
        self.init(endpoint: try AWSEnvironment.secretsManagerEndpoint(environment, region: region),
                  signer: SigV4Signer(credentials: credentials, region: region, service: "secretsmanager"), timeout: timeout)
    }

    public func getSecretValue(_ id: String, stage: String? = nil, versionID: String? = nil) throws -> SecretValue {
        var body: [String: Any] = ["SecretId": id]
        // AWSCURRENT explicitly when nothing is asked for: the service's default, and moto's default
        // version does not follow UpdateSecretVersionStage.
        if let stage { body["VersionStage"] = stage } else if versionID == nil { body["VersionStage"] = "AWSCURRENT" }
        if let versionID { body["VersionId"] = versionID }
        let reply = try call("GetSecretValue", secretID: id, body)
        guard let string = reply["SecretString"] as? String else {
            throw SecretsManagerError(operation: "GetSecretValue", secretID: id, status: 200, code: nil,
                                      message: "the secret has no SecretString (binary secrets are not supported)",
                                      hint: "Store the secret as a string (put-secret-value --secret-string).")
        }
        SecretRedactor.shared.register(string)
        return SecretValue(versionID: reply["VersionId"] as? String ?? "", stages: reply["VersionStages"] as? [String] ?? [], string: string)
    }

    /// Version ids mapped to their stages.
    public func describeSecret(_ id: String) throws -> [String: [String]] {
        let reply = try call("DescribeSecret", secretID: id, ["SecretId": id])
        return reply["VersionIdsToStages"] as? [String: [String]] ?? [:]
    }

    /// Stores a new version (idempotent per `clientRequestToken`) with `stages`.
    @discardableResult
    public func putSecretValue(_ id: String, secretString: String, clientRequestToken: String, stages: [String]) throws -> String {
        let reply = try call("PutSecretValue", secretID: id,
                             ["SecretId": id, "SecretString": secretString, "ClientRequestToken": clientRequestToken, "VersionStages": stages])
        return reply["VersionId"] as? String ?? clientRequestToken
    }

    public func updateSecretVersionStage(_ id: String, stage: String, moveTo: String?, removeFrom: String?) throws {
        var body: [String: Any] = ["SecretId": id, "VersionStage": stage]
        if let moveTo { body["MoveToVersionId"] = moveTo }
        if let removeFrom { body["RemoveFromVersionId"] = removeFrom }
        _ = try call("UpdateSecretVersionStage", secretID: id, body)
    }

    /// For fixtures and first-time setup.
    @discardableResult
    public func createSecret(_ name: String, secretString: String) throws -> String {
        let reply = try call("CreateSecret", secretID: name, ["Name": name, "SecretString": secretString])
        return reply["ARN"] as? String ?? name
    }

    /// One signed POST; the JSON reply, or a ``SecretsManagerError``.
    func call(_ operation: String, secretID: String, _ payload: [String: Any]) throws -> [String: Any] {
        let body = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
        let headers = signer.sign(method: "POST", url: endpoint, headers: [
            "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "secretsmanager.\(operation)",
        ], body: Array(body))
        let exchange: HTTPExchange
        do {
            exchange = try HTTPClient.send(method: "POST", url: endpoint.absoluteString, headers: headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                           body: body, timeout: .seconds(max(0.001, timeout)), maxBodyBytes: Self.maxResponseBytes)
        } catch {
            throw SecretsManagerError(
                operation: operation, secretID: secretID, status: nil, code: nil,
                message: "\(URLRedaction.redact(endpoint.absoluteString).text): \(error)",
                hint: "Check network access to \(endpoint.host ?? "the endpoint") (AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL override it) and retry.")
        }
        let object = (try? JSONSerialization.jsonObject(with: exchange.body)) as? [String: Any]
        guard exchange.status == 200 else {
            let (code, message) = Self.errorCode(object: object, data: exchange.body)
            throw SecretsManagerError(operation: operation, secretID: secretID, status: exchange.status, code: code, message: message,
                                      hint: Self.hint(code: code, status: exchange.status, secretID: secretID, signer: signer))
        }
        return object ?? [:]
    }

    /// `__type`/`message` from a JSON error, or `<Code>`/`<Message>` from an XML one (auth errors).
    static func errorCode(object: [String: Any]?, data: Data?) -> (String?, String) {
        if let object {
            let type = (object["__type"] as? String).map { String($0.split(separator: "#").last ?? Substring($0)) }
            return (type, object["message"] as? String ?? object["Message"] as? String ?? "")
        }
        let text = String(decoding: data ?? Data(), as: UTF8.self)
        func tag(_ name: String) -> String? {
            guard let start = text.range(of: "<\(name)>"), let end = text.range(of: "</\(name)>", range: start.upperBound..<text.endIndex) else { return nil }
            return String(text[start.upperBound..<end.lowerBound])
        }
        return (tag("Code"), tag("Message") ?? String(text.prefix(200)))
    }

    static func hint(code: String?, status: Int, secretID: String, signer: SigV4Signer) -> String {
        switch code {
        case "ResourceNotFoundException":
            return "Check the secret id '\(secretID)' and the region \(signer.region), or create it (aws secretsmanager create-secret --name \(secretID))."
        case "SignatureDoesNotMatch", "InvalidClientTokenId", "UnrecognizedClientException", "IncompleteSignature", "InvalidSignatureException":
            return "The credentials were refused (\(signer.credentials)): check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS_PROFILE entry in ~/.aws/credentials."
        case "ExpiredTokenException":
            return "The session token has expired: refresh the temporary credentials (AWS_SESSION_TOKEN)."
        case "AccessDeniedException":
            return "Grant \(signer.credentials.accessKeyID) secretsmanager:GetSecretValue (and Describe/Put/UpdateSecretVersionStage to rotate) on '\(secretID)'."
        case "DecryptionFailure":
            return "Secrets Manager cannot decrypt the secret with its KMS key: grant kms:Decrypt to the caller."
        default:
            return status >= 500 ? "Secrets Manager had an internal error; retry later." : "See the AWS error code above."
        }
    }

    /// The most of a response body that is read: a secret is at most 64 KiB, with its JSON envelope.
    static let maxResponseBytes = 1 << 20
}

/// The `aws-sm:` scheme for ``SecretResolver``: `aws-sm:SECRET_ID[#json_key][@VERSION_STAGE]`.
public struct AWSSecretsProvider: SecretProvider {
    public let scheme = "aws-sm"

    public init() {}

    public func fetch(_ reference: SecretReference, environment: [String: String]) throws -> String {
        let client = try SecretsManagerClient(environment: environment)
        return try client.getSecretValue(reference.identifier, stage: reference.versionStage).string
    }

    /// Registers the provider with the shared resolver (done once by the executable at start-up).
    public static func register(with resolver: SecretResolver = .shared) {
        resolver.register(AWSSecretsProvider())
    }
}
