import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBETL

@Suite(.serialized) struct HTTPSourceTests {
    static var fast: HTTPSettings {
        HTTPSettings(timeout: .seconds(5), deadline: .seconds(20), maxAttempts: 6, backoffBase: .milliseconds(50), backoffCap: .milliseconds(200), rate: 50, burst: 5)
    }

    func load(_ world: ETLWorld, _ url: String, http: HTTPSettings = HTTPSourceTests.fast) throws -> LoadResult {
        let connection = try world.login("nfl_loader")
        defer { connection.close() }
        return try ETLRunner.loadGames(connection: connection, source: url, options: ETLWorld.options, http: http, logger: TestCluster.logger)
    }

    /// 503, 503, 429 with Retry-After: 1, then 200: the load succeeds; Retry-After is honoured;
    /// every attempt carries the correlation id; a second run gets 304 and is skipped.
    @Test func retriesThenLoadsThenSkipsOn304() throws {
        let server = try ScenarioServer(responses: [
            ["status": 503], ["status": 503], ["status": 429, "headers": ["Retry-After": "1"]],
            ["status": 200, "file": Slice.path, "headers": ["ETag": "\"v1\"", "Last-Modified": "Mon, 01 Sep 2025 00:00:00 GMT"]],
        ], etag: "\"v1\"")
        try ETLWorld.with { world in
            let result = try load(world, server.url)
            #expect(result.status == "succeeded" && result.inserted == 842)
            let requests = server.requests
            #expect(requests.count == 4)
            if requests.count == 4 {
                #expect(requests[3].time - requests[2].time >= 0.95, "Retry-After: 1 not honoured: \(requests[3].time - requests[2].time)")
                #expect(requests.allSatisfy { $0.headers["x-correlation-id"] == "test-corr" })
                #expect(requests.allSatisfy { $0.headers["if-none-match"] == nil })
            }
            #expect(try world.scalar("SELECT etag FROM nfl.etl_source_state WHERE source = \(server.url)", as: String.self) == "\"v1\"")

            let skipped = try load(world, server.url)
            #expect(skipped.status == "skipped" && skipped.runID != nil)
            #expect(server.requests.last?.headers["if-none-match"] == "\"v1\"")
            #expect(server.requests.last?.headers["if-modified-since"] == "Mon, 01 Sep 2025 00:00:00 GMT")
            #expect(try world.scalar("SELECT status FROM nfl.etl_runs WHERE id = \(skipped.runID!)", as: String.self) == "succeeded")
            #expect(try world.scalar("SELECT count(*) FROM nfl.data_quality_reports WHERE etl_run_id = \(skipped.runID!) AND check_name = 'not_modified'", as: Int.self) == 1)
            #expect(try world.counts()["games"] == 842)
        }
    }

    /// A server that never recovers: the run stops at the deadline, records the failure, loads nothing.
    @Test func stopsAtTheDeadline() throws {
        let server = try ScenarioServer(responses: [["status": 503]])
        try ETLWorld.with { world in
            var http = HTTPSourceTests.fast
            http.deadline = .seconds(2)
            http.maxAttempts = 100
            http.backoffBase = .milliseconds(200)
            http.backoffCap = .milliseconds(400)
            let started = ContinuousClock.now
            do {
                _ = try load(world, server.url, http: http)
                Issue.record("the load succeeded against a server that never recovers")
            } catch let failed as LoadFailed {
                #expect(failed.cause.contains("deadline of 2.0 seconds reached"), "\(failed.cause)")
                #expect(!failed.permanent, "a server error may go away: a queued load retries it")
                #expect(try world.scalar("SELECT status FROM nfl.etl_runs WHERE id = \(failed.result.runID!)", as: String.self) == "failed")
            }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(4), "\(elapsed)")
            #expect(server.requests.count >= 3)
            #expect(try world.counts()["games"] == 0)
        }
    }

    /// A presigned URL (S3/GCS/Azure style): the request carries the whole query, but the signature,
    /// credential and token values never reach `nfl.etl_runs`, the result or an error. Such a URL is
    /// not remembered for conditional requests: two URLs that differ only in a redacted value would
    /// share the record, and the second would be skipped (304) without being read.
    @Test func presignedQueryValuesAreRedacted() throws {
        let secrets = ["AKIAEXAMPLE7Q", "d3adb33fsignature", "FQoGZXIvYXdzEXAMPLETOKEN", "sv0sigvalue", "semic0lonSecret"]
        let server = try ScenarioServer(responses: [
            ["status": 503], ["status": 200, "file": Slice.path, "headers": ["ETag": "\"p1\""]],
        ], etag: "\"p1\"")
        func presigned(_ signature: String) -> String {
            server.url + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=\(secrets[0])%2F20261206%2Fus-east-1%2Fs3%2Faws4_request"
                + "&X-Amz-Date=20261206T000000Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=\(signature)"
                + "&X-Amz-Security-Token=\(secrets[2])&sig=\(secrets[3])&season=2024;token=\(secrets[4])#access_token=frag"
        }
        let expectedName = server.url + "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED&X-Amz-Date=20261206T000000Z"
            + "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED&sig=REDACTED&season=2024;token=REDACTED"
        #expect(try HTTPSource.displayName(presigned(secrets[1])) == expectedName)
        try ETLWorld.with { world in
            let result = try load(world, presigned(secrets[1]))
            #expect(result.status == "succeeded" && result.inserted == 842)
            #expect(result.source == expectedName, "\(result.source)")
            // The server got the real query string on every attempt (the retry too).
            #expect(server.paths.count == 2 && server.paths.allSatisfy { $0.contains("X-Amz-Signature=\(secrets[1])") && $0.contains(secrets[2]) && $0.contains(secrets[4]) },
                    "\(server.paths)")
            let stored = try world.scalar("SELECT string_agg(source, ' ') FROM nfl.etl_runs", as: String.self)
            for secret in secrets + ["frag"] { #expect(!stored.contains(secret), "\(secret) stored: \(stored)") }
            #expect(stored.contains("X-Amz-Signature=REDACTED"))
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_source_state", as: Int.self) == 0, "a redacted name keys no source state")
            // Another URL that differs only in a redacted value is read again, not skipped.
            let again = try load(world, presigned("0therSignature"))
            #expect(again.status == "succeeded" && again.unchanged == 842, "\(again.status)")
            #expect(server.requests.last?.headers["if-none-match"] == nil)
        }
        // An error names the source without the secrets.
        let missing = try ScenarioServer(responses: [["status": 404]])
        let url = missing.url + "?X-Amz-Signature=\(secrets[1])&token=\(secrets[2])&v=1;sig=\(secrets[4])"
        try ETLWorld.with { world in
            do {
                _ = try load(world, url)
                Issue.record("a 404 loaded")
            } catch let failed as LoadFailed {
                let shown = "\(failed.cause) \(failed.diagnostic.summary) \(failed.result.source)"
                #expect(shown.contains("X-Amz-Signature=REDACTED&token=REDACTED&v=1;sig=REDACTED"), "\(shown)")
                for secret in secrets { #expect(!shown.contains(secret), "\(shown)") }
                #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE source LIKE '%REDACTED%' AND status = 'failed'", as: Int.self) == 1)
            }
        }
        // Text that is not a URL, or a URL with one slash: user info and the query are cut, not echoed.
        #expect {
            try HTTPSource.displayName("http://user:hunter2@[::1/games.csv?sig=\(secrets[3])")
        } throws: { error in
            let text = "\(error)"
            return !text.contains("hunter2") && !text.contains(secrets[3]) && text.contains("http://[::1/games.csv?… (query string not shown)")
        }
        #expect {
            try ETLRunner.open("https:/alice:hunter2@127.0.0.1/games.csv?sig=\(secrets[3])", http: HTTPSourceTests.fast, conditional: nil, correlationID: nil, logger: TestCluster.logger)
        } throws: { error in
            let text = "\(error)"
            return !text.contains("hunter2") && !text.contains(secrets[3]) && text.contains("needs two slashes") && (error as? OperatorError)?.exitStatus == .usage
        }
        // Ordinary parameters stay; names are matched case-insensitively and percent-decoded.
        #expect(try HTTPSource.displayName("https://h/x.csv?Token=a&API%5FKEY=b&season=2024&keyword=c")
                == "https://h/x.csv?Token=REDACTED&API%5FKEY=REDACTED&season=2024&keyword=c")
    }

    /// Two sources that differ only in a parameter the name keeps each keep their own conditional
    /// record; a header-only body fails the run instead of counting as a fresh load.
    @Test func distinctSourcesAndHeaderOnlyBodies() throws {
        let header = try String(contentsOfFile: Slice.path, encoding: .utf8).prefix { $0 != "\n" } + "\n"
        let dir = try CLIRunner.temporaryDirectory("nfldb-etl-header")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try header.write(toFile: dir + "/header.csv", atomically: true, encoding: .utf8)
        let server = try ScenarioServer(responses: [["status": 200, "file": Slice.path, "headers": ["ETag": "\"s\""]]], etag: "\"s\"")
        let empty = try ScenarioServer(responses: [["status": 200, "file": dir + "/header.csv"]])
        try ETLWorld.with { world in
            #expect(try load(world, server.url + "?season=2024").status == "succeeded")
            let other = try load(world, server.url + "?season=2023")
            // The scripted server answers 304 to its ETag whatever the query: only a request without
            // If-None-Match shows that the 2023 source was not taken for the 2024 one.
            #expect(other.status == "succeeded" && server.requests.last?.headers["if-none-match"] == nil, "\(other.status)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_source_state", as: Int.self) == 2)
            // Two users of one URL (user info in it) share no record either: each may be shown other content.
            let alice = server.url.replacingOccurrences(of: "http://", with: "http://alice:PWA1@")
            #expect(try load(world, alice).status == "succeeded")
            let bob = try load(world, server.url.replacingOccurrences(of: "http://", with: "http://bob:PWBOB@"))
            #expect(bob.status == "succeeded" && server.requests.last?.headers["if-none-match"] == nil, "\(bob.status)")
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_source_state", as: Int.self) == 2)
            do {
                _ = try load(world, empty.url)
                Issue.record("a header-only body loaded")
            } catch let failed as LoadFailed {
                #expect(failed.cause.contains("has a header but no data rows"), "\(failed.cause)")
                #expect(!failed.permanent, "an upstream that lost its rows may have them on the next try")
            }
            #expect(try world.scalar("SELECT status FROM nfl.etl_runs ORDER BY id DESC LIMIT 1", as: String.self) == "failed")
            #expect(try world.counts()["games"] == 842, "the tables keep their rows")
            let validated = try ETLRunner.validateGames(source: dir + "/header.csv", http: HTTPSourceTests.fast, correlationID: nil, logger: TestCluster.logger)
            #expect(validated.status == "invalid: no data rows" && validated.rowsRead == 0)
        }
    }

    /// A 404 is not retried, and marked so that a queued load is not retried either.
    @Test func clientErrorsAreNotRetried() throws {
        let server = try ScenarioServer(responses: [["status": 404]])
        #expect {
            try HTTPSource(url: URL(string: server.url)!, settings: HTTPSourceTests.fast, conditional: nil, correlationID: nil, logger: TestCluster.logger)
        } throws: { error in
            (error as? HTTPSourceError).map { !$0.retryable && $0.summary.contains("HTTP 404") } ?? false
        }
        #expect(server.requests.count == 1)
    }

    /// 408 is transient (retried, then loads); 206 and an unprompted 304 are not what was asked for:
    /// refused at once, marked not retryable, the run recorded failed, nothing loaded.
    @Test func statusesThatAreNotClientErrors() throws {
        let timeout = try ScenarioServer(responses: [["status": 408], ["status": 200, "file": Slice.path]])
        try ETLWorld.with { world in
            let result = try load(world, timeout.url)
            #expect(result.status == "succeeded" && result.inserted == 842)
            #expect(timeout.requests.count == 2)
            for (status, expected) in [(206, "unexpected HTTP status 206"), (304, "HTTP 304 Not Modified to a request that was not conditional")] {
                let server = try ScenarioServer(responses: [["status": status]])
                do {
                    _ = try load(world, server.url)
                    Issue.record("\(status) was accepted")
                } catch let failed as LoadFailed {
                    #expect(failed.cause.contains(expected), "\(failed.cause)")
                    #expect(failed.permanent)
                    #expect(try world.scalar("SELECT status FROM nfl.etl_runs WHERE id = \(failed.result.runID!)", as: String.self) == "failed")
                }
                #expect(server.requests.count == 1)
            }
            // An upper-case scheme is the same URL (RFC 3986), not an "unsupported URL" retried until the deadline.
            let upper = try ScenarioServer(responses: [["status": 200, "file": Slice.path]])
            let loaded = try load(world, upper.url.replacingOccurrences(of: "http://", with: "HTTP://"))
            #expect(loaded.status == "succeeded" && upper.requests.count == 1)
        }
        // The source state is kept under one name whatever the scheme's case, so conditional requests still happen.
        #expect(try HTTPSource.displayName("HTTP://user:pw@127.0.0.1:8/games.csv") == "http://127.0.0.1:8/games.csv")
        // A scheme the loader does not read is a usage error before anything is opened.
        #expect {
            try ETLRunner.open("ftp://127.0.0.1/games.csv", http: HTTPSourceTests.fast, conditional: nil, correlationID: nil, logger: TestCluster.logger)
        } throws: { error in
            String(describing: error).contains("ftp://… is not a source nfldb reads") && (error as? OperatorError)?.exitStatus == .usage
        }
    }

    /// The token bucket spaces the attempts of one run: rate 4/s, burst 1.
    @Test func rateLimitSpacesAttempts() throws {
        let server = try ScenarioServer(responses: [["status": 500], ["status": 500], ["status": 500], ["status": 200, "file": Slice.path]])
        var http = HTTPSourceTests.fast
        http.rate = 4
        http.burst = 1
        http.backoffBase = .milliseconds(1)
        http.backoffCap = .milliseconds(1)
        let source = try HTTPSource(url: URL(string: server.url)!, settings: http, conditional: nil, correlationID: nil, logger: TestCluster.logger)
        var bytes = 0
        while let chunk = try source.read() { bytes += chunk.count }
        #expect(bytes == (try Data(contentsOf: URL(fileURLWithPath: Slice.path))).count)
        let times = server.requests.map(\.time)
        #expect(times.count == 4)
        for i in 1..<times.count { #expect(times[i] - times[i - 1] >= 0.2, "attempt \(i + 1) came \(times[i] - times[i - 1]) s after the previous one") }
    }

    /// A body cut short (a Content-Length smaller than the file, or a connection closed early
    /// without a length) ends inside the last row: the run fails and nothing changes.
    @Test func cutBodiesFail() throws {
        let size = try Data(contentsOf: URL(fileURLWithPath: Slice.path)).count
        try ETLWorld.with { world in
            for spec: [String: Any] in [["status": 200, "file": Slice.path, "length": size - 8],
                                        ["status": 200, "file": Slice.path, "truncate": 8, "length": "none"]] {
                let server = try ScenarioServer(responses: [spec])
                do {
                    let result = try load(world, server.url)
                    Issue.record("a cut body loaded: \(result.status) \(result.updated) updated (\(spec))")
                } catch let failed as LoadFailed {
                    #expect(failed.cause.contains("ends without a line break after row 842 (line 843): it looks truncated"), "\(failed.cause)")
                    #expect(try world.scalar("SELECT status FROM nfl.etl_runs WHERE id = \(failed.result.runID!)", as: String.self) == "failed")
                }
                #expect(try world.counts()["games"] == 0 && world.counts()["stadiums"] == 0)
            }
        }
    }

    /// An endless body of 'A's without a line break (a worker takes URLs from Redis): refused at
    /// 1 MiB instead of growing until the process aborts; the run is recorded as failed, and the
    /// download is aborted at once: the server sees the connection closed after a few MiB (the
    /// read-ahead is held back at 4 MiB), not a transfer that goes on in the background.
    /// (On URLSession this hung for good: tearing the session down waited on a work queue the
    /// endless body never let go of; CI timed out on it.)
    @Test func endlessBodyIsRefused() throws {
        let server = try ScenarioServer(responses: [["status": 200, "endless": "A"]])
        try ETLWorld.with { world in
            let started = ContinuousClock.now
            do {
                let result = try load(world, server.url)
                Issue.record("an endless body loaded: \(result.status)")
            } catch let failed as LoadFailed {
                #expect(failed.cause.contains("line 1: field 1 of the record starting on this line is longer than 1 MiB"), "\(failed.cause)")
                #expect(try world.scalar("SELECT status FROM nfl.etl_runs WHERE id = \(failed.result.runID!)", as: String.self) == "failed")
            }
            #expect(ContinuousClock.now - started < .seconds(30))
            #expect(try world.scalar("SELECT count(*) FROM nfl.etl_runs WHERE status = 'running'", as: Int.self) == 0)
            #expect(poll(timeout: .seconds(10)) { !server.closedEndlessBodies.isEmpty }, "the server still sends: the transfer was not aborted")
            let sent = server.closedEndlessBodies.first?.sent ?? 0
            #expect(sent < 64 << 20, "\(sent) bytes were sent before the transfer was aborted")
        }
    }

    /// A server that stops sending mid-body (the connection stays open): the load fails once no
    /// data came for etl.http.timeout, naming the bytes received; nothing is loaded.
    @Test func stalledBodyFails() throws {
        let server = try ScenarioServer(responses: [["status": 200, "file": Slice.path, "stall_after": 20000]])
        try ETLWorld.with { world in
            var http = HTTPSourceTests.fast
            http.timeout = .seconds(1)
            let started = ContinuousClock.now
            do {
                let result = try load(world, server.url, http: http)
                Issue.record("a stalled body loaded: \(result.status)")
            } catch let failed as LoadFailed {
                #expect(failed.cause.contains("the download stalled: no data for 1.0 seconds after 20000 bytes"), "\(failed.cause)")
            }
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(try world.counts()["games"] == 0)
        }
    }

    /// A redirect is not followed, to another local port or to a host that does not resolve: the
    /// run fails at once (not retried) naming the Location without its credentials or query, and
    /// no request reaches the redirect target.
    @Test func redirectsAreNotFollowed() throws {
        let target = try ScenarioServer(responses: [["status": 200, "file": Slice.path]])
        try ETLWorld.with { world in
            for (location, shown) in [("http://user:secret@127.0.0.1:\(target.port)/games.csv?X-Signature=abc", "http://127.0.0.1:\(target.port)/games.csv?… (query string not shown)"),
                                      ("http://nfldb-probe.invalid/games.csv", "http://nfldb-probe.invalid/games.csv"),
                                      ("/elsewhere.csv", "/elsewhere.csv")] {
                let server = try ScenarioServer(responses: [["status": 302, "headers": ["Location": location]]])
                do {
                    let result = try load(world, server.url)
                    Issue.record("a redirect was followed: \(result.status)")
                } catch let failed as LoadFailed {
                    #expect(failed.cause.contains("the server redirected (HTTP 302) to "), "\(failed.cause)")
                    #expect(failed.cause.contains(shown), "\(failed.cause)")
                    #expect(!failed.cause.contains("secret") && !failed.cause.contains("abc"), "\(failed.cause)")
                    #expect(failed.hint.contains("Give that URL as --source"))
                    #expect(failed.permanent, "a queued load must not retry a redirect")
                    #expect(try world.scalar("SELECT concat(status, ' ', source) FROM nfl.etl_runs WHERE id = \(failed.result.runID!)", as: String.self) == "failed \(server.url)")
                }
                #expect(server.requests.count == 1, "the redirect was retried")
            }
            #expect(target.requests.isEmpty, "a request reached the redirect target")
            #expect(try world.counts()["games"] == 0)
        }
    }

    @Test func retryAfterParsing() {
        #expect(HTTPSource.parseRetryAfter("3") == .seconds(3))
        #expect(HTTPSource.parseRetryAfter("soon") == nil)
        // A hostile server cannot crash the loader (Duration traps on overflow): capped at a day.
        for huge in ["1e30", "inf", "999999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            #expect(HTTPSource.parseRetryAfter(huge) == .seconds(86_400), "\(huge)")
        }
        #expect(HTTPSource.parseRetryAfter("nan") == nil)
        let date = HTTPSource.parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT")
        #expect(date == .zero)
    }
}

@Suite struct ETLHTTPSettingsTests {
    @Test("etl.http.rate, timeout and deadline of 0 are refused with their source (0 would never send a request, or give up before the first)", arguments: [
        ("NFLDB_ETL_HTTP_RATE", "0", "etl.http.rate: must be a number of requests per second above 0"),
        ("NFLDB_ETL_HTTP_DEADLINE", "0", "etl.http.deadline: must be longer than 0"),
        ("NFLDB_ETL_HTTP_TIMEOUT", "0s", "etl.http.timeout: must be longer than 0"),
    ])
    func zeroRefused(variable: String, value: String, expected: String) throws {
        let configuration = try ConfigurationLoader(keys: ConfigKey.global + ETLConfig.keys, environment: [variable: value], workingDirectory: "/nonexistent-nfldb-dir").load()
        #expect {
            try ETLConfig(configuration: configuration)
        } throws: { error in
            String(describing: error).contains("env \(variable): \(expected)")
        }
        #expect(try ETLConfig(configuration: ConfigurationLoader(keys: ConfigKey.global + ETLConfig.keys, environment: [:], workingDirectory: "/nonexistent-nfldb-dir").load()).http.rate == 1)
    }
}
