import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// What the `nfldb etl` commands call: open the source (file or URL), run, return the result.
public enum ETLRunner {
    public static func isURL(_ source: String) -> Bool {
        source.lowercased().hasPrefix("http://") || source.lowercased().hasPrefix("https://")
    }

    /// Opens a path or an http(s) URL; for URLs, `conditional` validators make the request conditional.
    public static func open(_ source: String, http: HTTPSettings, conditional: HTTPValidators?, correlationID: String?, logger: Logger) throws -> any ByteSource {
        if isURL(source) {
            return try HTTPSource(url: checkedURL(source), settings: http, conditional: conditional, correlationID: correlationID, logger: logger)
        }
        // `ftp://…`, `file://…`: a scheme this loader does not read, not a file named so.
        if let colon = source.range(of: "://"), source[..<colon.lowerBound].allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }),
           !source[..<colon.lowerBound].isEmpty, !FileManager.default.fileExists(atPath: source) {
            throw OperatorError(
                "--source \(source[..<colon.lowerBound])://… is not a source nfldb reads (only http://, https:// and local paths)",
                hint: "Download it first and give the path, or give an http(s) URL.", exitStatus: .usage)
        }
        return try FileSource(path: source)
    }

    /// An http(s) URL that can be requested: a host, and a port in 1…65535 if one is given. A
    /// malformed URL is a usage error (exit 2), not a connection error retried until the deadline.
    public static func checkedURL(_ source: String) throws -> URL {
        let shown = (try? HTTPSource.displayName(source)) ?? HTTPSource.redactedText(source)
        guard var components = URLComponents(string: source), components.url != nil else {
            throw OperatorError("--source \(shown) is not a valid URL", hint: "Give a path or an http(s) URL.", exitStatus: .usage)
        }
        // Schemes are case-insensitive (RFC 3986); URLSession knows only the lower-case ones and
        // would fail every attempt with "unsupported URL" until the retries ran out.
        components.scheme = components.scheme?.lowercased()
        guard let url = components.url else {
            throw OperatorError("--source \(shown) is not a valid URL", hint: "Give a path or an http(s) URL.", exitStatus: .usage)
        }
        guard let host = components.host, !host.isEmpty else {
            throw OperatorError("--source \(shown) has no host", hint: "Give an http(s) URL with a host, e.g. https://github.com/nflverse/….", exitStatus: .usage)
        }
        if let port = components.port, !(1...65535).contains(port) {
            throw OperatorError("--source \(shown) has port \(port), outside 1-65535", hint: "Fix the port in the URL.", exitStatus: .usage)
        }
        return url
    }

    /// `etl load games`: loads the source; an unchanged upstream (HTTP 304) is recorded as a
    /// succeeded run with no rows and reported as `skipped`.
    public static func loadGames(
        connection: PostgresConnection, source: String, options: LoadOptions, http: HTTPSettings, logger: Logger,
        progress: ((Int) -> Void)? = nil
    ) throws -> LoadResult {
        var conditional: HTTPValidators?
        if isURL(source) {
            let name = try HTTPSource.displayName(source)
            if let row = try connection.query("SELECT etag, last_modified FROM nfl.etl_source_state WHERE source = \(name)").rows.first {
                conditional = HTTPValidators(etag: row["etag"], lastModified: row["last_modified"])
            }
        }
        let input: any ByteSource
        do {
            input = try open(source, http: http, conditional: conditional, correlationID: options.correlationID, logger: logger)
        } catch let error as HTTPSourceError where !options.dryRun {
            // The upstream never delivered: record the failed run (freshness checks and `etl runs` see it).
            var result = LoadResult(status: "failed", source: error.url)
            result.error = error.diagnostic.oneLine
            result.runID = try connection.query("""
                INSERT INTO nfl.etl_runs (source, target_table, correlation_id, status, finished_at, error)
                VALUES (\(error.url), \(GamesLoader.target), \(options.correlationID), 'failed', clock_timestamp(), \(result.error))
                RETURNING id
                """).scalar(Int64.self)
            throw LoadFailed(result: result, cause: error.diagnostic.summary + " (" + (error.diagnostic.detail ?? "") + ")", hint: error.hint,
                             permanent: !error.retryable)
        }
        if let http = input as? HTTPSource, http.notModified {
            var result = LoadResult(status: "skipped", source: input.name)
            if !options.dryRun {
                result.runID = try connection.withTransaction {
                    let id = try connection.query("""
                        INSERT INTO nfl.etl_runs (source, target_table, correlation_id, status, finished_at)
                        VALUES (\(input.name), \(GamesLoader.target), \(options.correlationID), 'succeeded', clock_timestamp()) RETURNING id
                        """).scalar(Int64.self)
                    try connection.execute("""
                        INSERT INTO nfl.data_quality_reports (etl_run_id, check_name, severity, table_name, message)
                        VALUES (\(id), 'not_modified', 'info', \(GamesLoader.target), 'upstream answered 304 Not Modified to the conditional request; nothing was read or changed')
                        """)
                    return id
                }
            }
            logger.info("etl load skipped: upstream not modified", metadata: ["etl.source": .string(input.name)])
            return result
        }
        return try GamesLoader(connection: connection, logger: logger).load(input, options: options, progress: progress)
    }

    /// `etl validate games`: the contract only, no database.
    public static func validateGames(source: String, http: HTTPSettings, correlationID: String?, logger: Logger, now: Date = Date(),
                                     progress: ((Int) -> Void)? = nil) throws -> LoadResult {
        let input = try open(source, http: http, conditional: nil, correlationID: correlationID, logger: logger)
        return try GamesValidation.validate(input, now: now, progress: progress)
    }
}

extension HTTPSource {
    /// The URL as stored in `nfl.etl_runs.source` and shown in logs and errors: without user and
    /// password, and with the values of credential-like query parameters (a presigned URL's
    /// `X-Amz-Signature`, `X-Amz-Credential`, `X-Amz-Security-Token`, Azure's `sig`, `token`, …)
    /// replaced by `REDACTED`. The other parameters stay, so the source is still recognisable.
    public static func displayName(_ source: String) throws -> String {
        guard let components = URLComponents(string: source) else {
            throw OperatorError("--source \(redactedText(source)) is not a valid URL", hint: "Give a path or an http(s) URL.", exitStatus: .usage)
        }
        return displayName(components) ?? redactedText(source)
    }

    /// `displayName` of a parsed URL (nil when the result cannot be formed).
    static func displayName(_ parsed: URLComponents) -> String? {
        var components = parsed
        components.user = nil
        components.password = nil
        // The name the source state is kept under: the same for `HTTP://…` and `http://…`.
        components.scheme = components.scheme?.lowercased()
        if let items = components.percentEncodedQueryItems, items.contains(where: { isCredentialParameter($0.name) }) {
            components.percentEncodedQueryItems = items.map {
                isCredentialParameter($0.name) ? URLQueryItem(name: $0.name, value: "REDACTED") : $0
            }
        }
        return components.string
    }

    /// A query parameter whose value is a secret or a signature.
    static func isCredentialParameter(_ encodedName: String) -> Bool {
        let name = (encodedName.removingPercentEncoding ?? encodedName).lowercased()
        if ["sig", "key", "code", "pwd", "pass", "auth"].contains(name) { return true }
        return ["signature", "credential", "token", "secret", "password", "passwd", "apikey", "api_key", "api-key",
                "access_key", "accesskey", "authorization", "session"].contains { name.contains($0) }
    }

    /// For text that does not parse as a URL: no user info (up to the last `@` before the path)
    /// and no query string.
    static func redactedText(_ source: String) -> String {
        var text = Substring(source)
        var query = ""
        if let mark = text.firstIndex(of: "?") {
            text = text[..<mark]
            query = "?… (query string not shown)"
        }
        if let scheme = text.range(of: "://") {
            let authorityEnd = text[scheme.upperBound...].firstIndex(of: "/") ?? text.endIndex
            if let at = text[scheme.upperBound..<authorityEnd].lastIndex(of: "@") {
                return String(text[..<scheme.upperBound]) + "…@" + String(text[text.index(after: at)...]) + query
            }
        }
        return String(text) + query
    }
}
