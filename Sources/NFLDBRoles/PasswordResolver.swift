import Foundation
import NFLDBCore

extension PasswordSource {
    /// The clear-text password, or nil when the source is unset (environment variable missing or
    /// empty, file missing). Every password found is registered with ``SecretRedactor`` so no
    /// message or log line can show it.
    ///
    /// - Throws: ``OperatorError`` when the file exists but cannot be read.
    public func resolve(environment: [String: String]) throws -> String? {
        let value: String?
        switch self {
        case .reference(let text):
            return try SecretResolver.shared.resolve(text, what: "password_ref", environment: environment)
        case .environment(let name):
            value = environment[name]
        case .file(let path):
            guard FileManager.default.fileExists(atPath: path) else { return nil }
            // The same rule as a file: reference (libpq's .pgpass rule): group or world access is refused.
            var info = stat()
            if stat(path, &info) == 0, info.st_mode & 0o077 != 0 {
                throw ConfigurationError(
                    "password_file \(path) has group or world access (mode \(String(info.st_mode & 0o777, radix: 8))); refusing to use it",
                    hint: "Run: chmod 0600 \(path)")
            }
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: path))
            } catch {
                throw OperatorError(
                    "cannot read password file \(path): \(error.localizedDescription)",
                    hint: "Make the file readable by the user running nfldb, or unset password_file for this role.")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw OperatorError(
                    "password file \(path) is not UTF-8 text",
                    hint: "Write the password as UTF-8 text on the file's first line (e.g. printf '%s\\n' \"$PW\" > \(path)).")
            }
            let line = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map {
                String($0.hasSuffix("\r") ? $0.dropLast() : $0)
            }
            // libpq sends a password up to its first NUL: a verifier of the whole line could never match a login.
            if let line, line.unicodeScalars.contains(where: { $0.value == 0 }) {
                throw OperatorError(
                    "the first line of password file \(path) contains a NUL byte: nobody could log in with that password (clients stop at the NUL)",
                    hint: "Write the password as text without NUL bytes on the file's first line.")
            }
            value = line
        }
        guard let value, !value.isEmpty else { return nil }
        SecretRedactor.shared.register(value)
        return value
    }
}
