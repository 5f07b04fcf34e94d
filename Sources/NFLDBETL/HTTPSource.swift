import Foundation
import Logging
import NFLDBCore
import NFLDBHTTP

/// A token bucket shared by every request of one run: `rate` tokens per second, at most `burst`.
public final class TokenBucket: @unchecked Sendable {
    private let rate: Double
    private let burst: Double
    private var tokens: Double
    private var last = ContinuousClock.now
    private let lock = NSLock()

    public init(rate: Double, burst: Int) {
        self.rate = max(rate, 0.001)
        self.burst = Double(max(burst, 1))
        self.tokens = self.burst
    }

    /// Takes one token, sleeping until one is available; false if that would pass `deadline`.
    public func take(before deadline: ContinuousClock.Instant) -> Bool {
        while true {
            lock.lock()
            let now = ContinuousClock.now
            tokens = min(burst, tokens + (now - last).inSeconds * rate)
            last = now
            if tokens >= 1 {
                tokens -= 1
                lock.unlock()
                return true
            }
            let wait = Duration.seconds((1 - tokens) / rate)
            lock.unlock()
            if now + wait > deadline { return false }
            Thread.sleep(forTimeInterval: wait.inSeconds)
        }
    }
}

/// Why the HTTP source gave up.
public struct HTTPSourceError: NFLDBError, Sendable {
    public let url: String
    public let summary: String
    public let attempts: Int
    public let hint: String
    /// False for answers that will not change by asking again (a redirect, a 4xx other than 429):
    /// a queued load fails permanently instead of being retried.
    public var retryable = true
    public var diagnostic: Diagnostic {
        Diagnostic("\(url): \(summary)", detail: "\(attempts) attempt\(attempts == 1 ? "" : "s")", hint: hint)
    }
}

/// An HTTP(S) source: retries with exponential backoff and full jitter on connection errors,
/// timeouts, 429 and 5xx (honouring `Retry-After`), a token bucket per run, a total deadline, and
/// conditional requests (`If-None-Match` / `If-Modified-Since`). The body is handed to the parser
/// chunk by chunk as it arrives, through a ``CurlTransfer`` that holds the server back while the
/// parser is behind and is aborted the moment the source is given up (a refused endless body).
public final class HTTPSource: ByteSource, HTTPSourceMarker, @unchecked Sendable {
    public let name: String
    /// Credential values were taken out of ``name``: its validators are not remembered, since
    /// another URL that differs only there would find them and be skipped (HTTP 304) wrongly.
    public let nameIsRedacted: Bool
    public var remembersValidators: Bool { !nameIsRedacted }
    public private(set) var validators = HTTPValidators()
    /// The server answered 304 Not Modified: nothing to read.
    public private(set) var notModified = false
    public private(set) var attempts = 0
    public private(set) var status = 0

    private let url: URL
    private let settings: HTTPSettings
    private let logger: Logger
    private let correlationID: String?
    private let bucket: TokenBucket
    private let deadline: ContinuousClock.Instant
    private var transfer: CurlTransfer?

    /// Connects (with retries) until the server answers 200 (the body then streams through
    /// ``read()``) or 304 (``notModified``), or throws ``HTTPSourceError``.
    public init(url: URL, settings: HTTPSettings, conditional: HTTPValidators?, correlationID: String?, logger: Logger) throws {
        (self.name, self.nameIsRedacted) = Self.display(url.absoluteString)
        self.url = url
        self.settings = settings
        self.logger = logger
        self.correlationID = correlationID
        self.bucket = TokenBucket(rate: settings.rate, burst: settings.burst)
        self.deadline = ContinuousClock.now + settings.deadline
        try connect(conditional: conditional)
    }

    deinit {
        transfer?.stop()
    }

    private func fail(_ summary: String, hint: String, retryable: Bool = true) -> HTTPSourceError {
        var error = HTTPSourceError(url: name, summary: summary, attempts: attempts, hint: hint)
        error.retryable = retryable
        return error
    }

    private func log(_ message: Logger.Message, _ extra: Logger.Metadata) {
        var metadata: Logger.Metadata = ["http.url": .string(name), "http.attempt": .stringConvertible(attempts)]
        if let correlationID { metadata["correlation_id"] = .string(correlationID) }
        logger.info(message, metadata: metadata.merging(extra) { $1 })
    }

    private func connect(conditional: HTTPValidators?) throws {
        var lastProblem = "no attempt made"
        while attempts < settings.maxAttempts {
            guard bucket.take(before: deadline) else {
                throw fail("deadline of \(settings.deadline) reached waiting for the rate limit (last: \(lastProblem))",
                           hint: "Raise etl.http.deadline or etl.http.rate, or try again later.")
            }
            attempts += 1
            var headers = [("User-Agent", "nfldb-etl")]
            if let correlationID { headers.append(("X-Correlation-ID", correlationID)) }
            if let etag = conditional?.etag { headers.append(("If-None-Match", etag)) }
            if let modified = conditional?.lastModified { headers.append(("If-Modified-Since", modified)) }
            // A header with a CR, LF or NUL (an odd correlation id, a stored validator) would end its
            // line and start another: CurlTransfer does not send it (``CurlTransfer/headerIsSafe(_:_:)``).
            let remaining = deadline - ContinuousClock.now
            let timeout = min(settings.timeout, remaining)
            let started = ContinuousClock.now
            // The hard deadline is a second past the run's, so the reader's own deadline (and its
            // message) comes first; the transfer is aborted by then whatever happens.
            let transfer = CurlTransfer(url: url.absoluteString, headers: headers, connectTimeout: max(timeout, .milliseconds(50)),
                                        hardDeadline: deadline + .seconds(1), threadName: "nfldb-http-source")
            // Every outcome but a 200 (whose body ``read()`` streams) ends this attempt's transfer,
            // also the ones that return or throw.
            defer { if self.transfer !== transfer { transfer.stop() } }
            let outcome = transfer.waitForResponse(until: min(deadline, started + timeout + .milliseconds(200)))
            let ms = (ContinuousClock.now - started).inMilliseconds
            var retryAfter: Duration?
            switch outcome {
            case .response(let response):
                status = response.status
                log("http attempt", ["http.status": .stringConvertible(status), "duration_ms": .stringConvertible(ms.rounded())])
                switch status {
                case 200:
                    validators = HTTPValidators(etag: response.value("ETag"),
                                                lastModified: response.value("Last-Modified"))
                    self.transfer = transfer
                    return
                case 304 where conditional?.etag == nil && conditional?.lastModified == nil:
                    // Not asked for (no validator sent): a broken proxy or cache, not "unchanged".
                    throw fail("HTTP 304 Not Modified to a request that was not conditional (no If-None-Match or If-Modified-Since was sent)",
                               hint: "Something between nfldb and the source (a proxy or cache) answers for it; check it, or load from another URL.", retryable: false)
                case 304:
                    notModified = true
                    validators = conditional ?? HTTPValidators()
                    return
                case 300...399:
                    // Redirects are not followed (CurlTransfer): the target could be any host,
                    // and etl_runs.source would name the URL given, not the one read.
                    let location = response.value("Location").map { Self.redactedLocation($0, relativeTo: url) }
                    throw fail("the server redirected (HTTP \(status)) to \(location ?? "no Location given"); redirects are not followed (not retried)",
                               hint: location == nil ? "Check the URL (etl.games.source / --source)."
                                   : "Give that URL as --source (or etl.games.source) if you trust it.", retryable: false)
                case 408, 429, 500...599:
                    lastProblem = "HTTP \(status)"
                    retryAfter = response.value("Retry-After").flatMap(Self.parseRetryAfter)
                case 400...499:
                    throw fail("HTTP \(status) (not retried: a client error will not go away by itself)",
                               hint: "Check the URL (etl.games.source / --source) and whether the server needs credentials.", retryable: false)
                default:
                    // 201, 204, 206…: not a whole file; asking again gets the same answer.
                    throw fail("unexpected HTTP status \(status) (nfldb needs 200 with the whole file, or 304 to a conditional request; not retried)",
                               hint: "Check the URL (etl.games.source / --source): it should serve the CSV file itself.", retryable: false)
                }
            case .failed(let message):
                lastProblem = "connection error: \(message)"
                log("http attempt failed", ["error": .string(message.description), "duration_ms": .stringConvertible(ms.rounded())])
            case .timedOut:
                lastProblem = "no response within \(timeout)"
                log("http attempt timed out", ["duration_ms": .stringConvertible(ms.rounded())])
            }
            transfer.stop()  // now, not at the defer: the failed attempt's connection is not held while backing off
            guard attempts < settings.maxAttempts else { break }
            // Full jitter: uniform in [0, min(cap, base·2^(n-1))]; Retry-After is a floor.
            let exponential = min(settings.backoffCap.inSeconds, settings.backoffBase.inSeconds * pow(2, Double(attempts - 1)))
            var delay = Duration.seconds(Double.random(in: 0...exponential))
            if let retryAfter { delay = max(delay, retryAfter) }
            if ContinuousClock.now + delay >= deadline {
                throw fail("deadline of \(settings.deadline) reached after \(attempts) attempts (last: \(lastProblem); next retry in \(delay))",
                           hint: "The server did not recover in time; nothing was loaded. Try again later or raise etl.http.deadline.")
            }
            log("http retry scheduled", ["http.retry_in_ms": .stringConvertible(delay.inMilliseconds.rounded()), "http.problem": .string(lastProblem)])
            Thread.sleep(forTimeInterval: delay.inSeconds)
        }
        throw fail("gave up after \(attempts) attempts (last: \(lastProblem))",
                   hint: "Nothing was loaded. Try again later, or raise etl.http.max_attempts.")
    }

    /// A redirect target for messages: absolute, without user, password or query string (a
    /// presigned URL carries its signature there).
    static func redactedLocation(_ location: String, relativeTo base: URL) -> String {
        guard let absolute = URL(string: location, relativeTo: base)?.absoluteURL,
              var components = URLComponents(url: absolute, resolvingAgainstBaseURL: false) else {
            return "an unparsable Location"
        }
        components.user = nil
        components.password = nil
        let hadQuery = components.query != nil
        components.query = nil
        components.fragment = nil
        // Path parameters (`/file;sig=…`) go through the same redaction as a source's.
        return (components.string.map { URLRedaction.redact($0).text } ?? "an unparsable Location") + (hadQuery ? "?… (query string not shown)" : "")
    }

    /// Seconds, or an HTTP date.
    static func parseRetryAfter(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        // A huge or non-finite value (`1e30`, `inf`) is capped, not trusted: Duration traps on overflow,
        // and the run's deadline bounds the wait anyway.
        if let seconds = Double(trimmed) { return seconds.isNaN ? nil : .seconds(min(max(0, seconds), Self.longestRetryAfter)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        return .seconds(min(max(0, date.timeIntervalSinceNow), Self.longestRetryAfter))
    }

    /// A day: longer than any deadline a run would have.
    static let longestRetryAfter: Double = 86_400

    public func read() throws -> Data? {
        guard let transfer else { return nil }
        switch transfer.next(until: deadline, idle: settings.timeout) {
        case .data(let data): return data
        case .end: return nil
        case .failed(let message):
            throw fail("the download broke off after \(transfer.received) bytes: \(message)",
                       hint: "Nothing was loaded (the run's transaction rolled back). Run the load again.")
        case .timedOut:
            transfer.stop()
            throw fail("deadline of \(settings.deadline) reached while downloading (\(transfer.received) bytes so far)",
                       hint: "Nothing was loaded. Raise etl.http.deadline for slow links.")
        case .stalled:
            transfer.stop()
            throw fail("the download stalled: no data for \(settings.timeout) after \(transfer.received) bytes",
                       hint: "Nothing was loaded (the run's transaction rolled back). Run the load again; raise etl.http.timeout for a slow server.")
        }
    }
}
