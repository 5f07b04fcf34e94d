import Foundation
import Logging
import NFLDBCore
import NFLDBPostgres

/// What the `nfldb etl` commands call: open the source (file or URL), run, return the result.
public enum ETLRunner {
    /// A URL given with white space around it (a pasted ` https://…`) is that URL, not a file name.
    static func trimmedURL(_ source: String) -> String {
        let trimmed = source.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed != source && isURL(trimmed) ? trimmed : source
    }

    public static func isURL(_ source: String) -> Bool {
        let text = source.lowercased()
        return text.hasPrefix("http://") || text.hasPrefix("https://")
    }

    /// Opens a path or an http(s) URL; for URLs, `conditional` validators make the request conditional.
    public static func open(_ given: String, http: HTTPSettings, conditional: HTTPValidators?, correlationID: String?, logger: Logger) throws -> any ByteSource {
        let source = trimmedURL(given)
        if isURL(source) {
            return try HTTPSource(url: checkedURL(source), settings: http, conditional: conditional, correlationID: correlationID, logger: logger)
        }
        // `ftp://…`, `file://…`: a scheme this loader does not read, not a file named so. `https:/host…`
        // (one slash) is a mistyped URL: refused too, shown without its user info or query.
        if let colon = source.range(of: ":/"), source[..<colon.lowerBound].allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }),
           !source[..<colon.lowerBound].isEmpty, !FileManager.default.fileExists(atPath: source) {
            let scheme = source[..<colon.lowerBound]
            if ["http", "https"].contains(scheme.lowercased()) {
                throw OperatorError(
                    "--source \(HTTPSource.redactedText(source)) is not a valid URL (the scheme needs two slashes: \(scheme.lowercased())://)",
                    hint: "Write it as \(scheme.lowercased())://host/path.", exitStatus: .usage)
            }
            throw OperatorError(
                "--source \(scheme)://… is not a source nfldb reads (only http://, https:// and local paths)",
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
        let source = trimmedURL(source)
        var conditional: HTTPValidators?
        // A URL whose name had credential values redacted is not remembered (see ``HTTPSource/remembersValidators``).
        if isURL(source), URLComponents(string: source) != nil, case let (name, false) = HTTPSource.display(source) {
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
                INSERT INTO nfl.etl_runs (source, target_table, correlation_id, task_id, status, finished_at, error)
                VALUES (\(error.url), \(GamesLoader.target), \(options.correlationID), \(options.taskID), 'failed', clock_timestamp(), \(result.error))
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
                        INSERT INTO nfl.etl_runs (source, target_table, correlation_id, task_id, status, finished_at)
                        VALUES (\(input.name), \(GamesLoader.target), \(options.correlationID), \(options.taskID), 'succeeded', clock_timestamp()) RETURNING id
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
    /// The URL as stored in `nfl.etl_runs.source` and shown in logs and errors
    /// (``URLRedaction``: no user info or fragment, credential-like parameter values `REDACTED`),
    /// with the scheme in lower case.
    public static func displayName(_ source: String) throws -> String {
        guard URLComponents(string: source) != nil else {
            throw OperatorError("--source \(redactedText(source)) is not a valid URL", hint: "Give a path or an http(s) URL.", exitStatus: .usage)
        }
        return display(source).text
    }

    /// ``displayName(_:)`` and whether a parameter value was redacted (such a name cannot key the
    /// source state: two sources may differ only in what was taken out).
    static func display(_ source: String) -> (text: String, redacted: Bool) {
        var (text, redacted) = URLRedaction.redact(source)
        if let scheme = text.range(of: "://") { text = text[..<scheme.lowerBound].lowercased() + text[scheme.lowerBound...] }
        return (text, redacted)
    }

    /// For text that does not parse as a URL (or a path that looks like one): no user info, and no
    /// query at all.
    static func redactedText(_ source: String) -> String {
        let query = source.firstIndex(of: "?")
        let head = URLRedaction.redact(String(source[..<(query ?? source.endIndex)])).text
        return head + (query == nil ? "" : "?… (query string not shown)")
    }
}
