import Foundation
import NFLDBCore

/// The standard AWS SDK settings nfldb honours: credentials chain, region, endpoint override.
public enum AWSEnvironment {
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, then the shared credentials
    /// file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) at profile `AWS_PROFILE`
    /// (default `default`).
    public static func credentials(_ environment: [String: String]) throws -> AWSCredentials {
        if let id = nonEmpty(environment["AWS_ACCESS_KEY_ID"]) {
            guard let secret = nonEmpty(environment["AWS_SECRET_ACCESS_KEY"]) else {
                throw OperatorError("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
                                    hint: "Export both variables, or unset AWS_ACCESS_KEY_ID to use ~/.aws/credentials.", exitStatus: .usage)
            }
            SecretRedactor.shared.register(secret)
            SecretRedactor.shared.register(environment["AWS_SESSION_TOKEN"])
            return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty(environment["AWS_SESSION_TOKEN"]), source: "environment")
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let path = nonEmpty(environment["AWS_SHARED_CREDENTIALS_FILE"]) ?? home + "/.aws/credentials"
        let profile = nonEmpty(environment["AWS_PROFILE"]) ?? "default"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw OperatorError("no AWS credentials: AWS_ACCESS_KEY_ID is not set and \(path) cannot be read",
                                hint: "Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or write profile [\(profile)] to \(path) (mode 0600).", exitStatus: .usage)
        }
        let section = parseINI(text)[profile] ?? [:]
        guard let id = nonEmpty(section["aws_access_key_id"]), let secret = nonEmpty(section["aws_secret_access_key"]) else {
            throw OperatorError("no AWS credentials for profile [\(profile)] in \(path)",
                                hint: "Add aws_access_key_id and aws_secret_access_key under [\(profile)], or set AWS_PROFILE to a profile that has them.", exitStatus: .usage)
        }
        SecretRedactor.shared.register(secret)
        SecretRedactor.shared.register(section["aws_session_token"])
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: nonEmpty(section["aws_session_token"]),
                              source: "\(path) [\(profile)]")
    }

    /// `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    public static func region(_ environment: [String: String]) throws -> String {
        guard let region = nonEmpty(environment["AWS_REGION"]) ?? nonEmpty(environment["AWS_DEFAULT_REGION"]) else {
            throw OperatorError("no AWS region: neither AWS_REGION nor AWS_DEFAULT_REGION is set",
                                hint: "Export AWS_REGION (for example AWS_REGION=eu-west-1) for the user running nfldb.", exitStatus: .usage)
        }
        return region
    }

    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER`, then `AWS_ENDPOINT_URL`, else the public regional endpoint.
    public static func secretsManagerEndpoint(_ environment: [String: String], region: String) throws -> URL {
        for name in ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"] {
            if let text = nonEmpty(environment[name]) {
                guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
                    throw OperatorError("\(name)='\(text)' is not an http(s) URL", hint: "Set it to e.g. https://vpce-…secretsmanager.\(region).vpce.amazonaws.com or unset it.", exitStatus: .usage)
                }
                return url
            }
        }
        return URL(string: "https://secretsmanager.\(region).amazonaws.com/")!
    }

    static func parseINI(_ text: String) -> [String: [String: String]] {
        var result: [String: [String: String]] = [:]
        var current: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                continue
            }
            guard let current, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            result[current, default: [:]][key] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return result
    }

    static func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }
}
