import CCurl
import Foundation
import NFLDBCore

/// One HTTP request on libcurl in its own thread, its response read as a stream by one reader.
///
/// Why not URLSession: on Linux it has no backpressure (every chunk is queued for the delegate
/// however slowly it is read), and tearing a session down (`invalidateAndCancel`, `cancel`) waits
/// on its work queue, which a server that keeps sending never lets go of: a refused endless body hung
/// the caller for good. Here the write callback holds the transfer back while ``bufferLimit`` bytes
/// wait to be read, and aborts it as soon as ``stop()`` is called or the hard deadline passes, so a
/// transfer never outlives its reader by more than a callback.
public final class CurlTransfer: @unchecked Sendable {
    /// The final response's status line and headers (after any 1xx).
    public struct Response: Sendable {
        public let status: Int
        public let headers: [String: String]
        /// A header's value by case-insensitive name (the last one sent wins).
        public func value(_ name: String) -> String? { headers[name.lowercased()] }
    }

    /// Why a transfer failed: libcurl's message, and whether no connection could be made at all.
    public struct Failure: Sendable, CustomStringConvertible {
        public let message: String
        /// The TCP connection was refused or could not be made (nothing was sent).
        public let couldNotConnect: Bool
        /// libcurl's own timeout (the hard deadline) ended it.
        public let timedOut: Bool
        public var description: String { message }
    }

    /// The server closed the connection without a (final) response.
    static let closedBeforeResponse = Failure(message: "the connection closed before a response", couldNotConnect: false, timedOut: false)

    public enum ResponseOutcome { case response(Response), failed(Failure), timedOut }
    public enum Chunk { case data(Data), end, failed(Failure), timedOut, stalled }

    /// Bytes received and not yet read at which the transfer is held back.
    public static let bufferLimit = 4 << 20

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var status: Int?
    private var headers: [String: String] = [:]
    private var response: Response?
    private var chunks: [Data] = []
    private var buffered = 0
    private var finished = false
    private var failure: Failure?
    private var stopped = false
    private var lastArrival = ContinuousClock.now
    private var receivedBytes = 0

    /// Body bytes received so far.
    public var received: Int {
        condition.lock()
        defer { condition.unlock() }
        return receivedBytes
    }

    private let hardDeadline: ContinuousClock.Instant

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_ALL)) }()

    /// Starts the request at once.
    /// - Parameters:
    ///   - method: `GET`, or `POST` and the like with `body` (sent as given, no `Expect: 100-continue`).
    ///   - headers: sent as given, except a header whose name or value holds CR, LF or NUL, which
    ///     is not sent (``headerIsSafe(_:_:)``).
    ///   - connectTimeout: for the TCP (and TLS) connection.
    ///   - hardDeadline: the transfer is aborted after it whatever the reader does.
    public init(method: String = "GET", url: String, headers requestHeaders: [(String, String)], body: Data? = nil,
                connectTimeout: Duration, hardDeadline: ContinuousClock.Instant, threadName: String = "nfldb-http") {
        _ = Self.globalInit
        self.hardDeadline = hardDeadline
        let thread = Thread { [self] in
            perform(method: method, url: url, requestHeaders: requestHeaders, body: body, connectTimeout: connectTimeout)
        }
        thread.name = threadName
        thread.start()
    }

    /// Whether a header can be sent as one line: no CR, LF or NUL in its name or value (which would
    /// split it into a second header or request).
    public static func headerIsSafe(_ name: String, _ value: String) -> Bool {
        !(name + value).unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" } && !name.isEmpty && !name.contains(":")
    }

    /// Aborts the transfer (the callbacks see it at once); does not wait for the thread.
    public func stop() {
        condition.lock()
        stopped = true
        chunks.removeAll()
        buffered = 0
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for the final response's headers.
    public func waitForResponse(until deadline: ContinuousClock.Instant) -> ResponseOutcome {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let response { return .response(response) }
            if finished { return .failed(failure ?? Self.closedBeforeResponse) }
            let left = deadline - ContinuousClock.now
            if left <= .zero { return .timedOut }
            _ = condition.wait(until: Date().addingTimeInterval(min(left.inSeconds, 0.25)))
        }
    }

    /// The next piece of the body; `.stalled` when nothing arrived for `idle` while the reader waited.
    public func next(until deadline: ContinuousClock.Instant, idle: Duration) -> Chunk {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if !chunks.isEmpty {
                let chunk = chunks.removeFirst()
                buffered -= chunk.count
                condition.broadcast()
                return .data(chunk)
            }
            if finished {
                if let failure { return .failed(failure) }
                return .end
            }
            let now = ContinuousClock.now
            if now >= deadline { return .timedOut }
            if now - lastArrival >= idle { return .stalled }
            let wait = min(deadline - now, idle - (now - lastArrival), .milliseconds(250))
            _ = condition.wait(until: Date().addingTimeInterval(max(wait.inSeconds, 0.001)))
        }
    }

    // MARK: - The transfer thread

    private func perform(method: String, url: String, requestHeaders: [(String, String)], body: Data?, connectTimeout: Duration) {
        guard let handle = curl_easy_init() else {
            finish(failure: Failure(message: "libcurl could not start a transfer", couldNotConnect: false, timedOut: false))
            return
        }
        defer { curl_easy_cleanup(handle) }
        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in requestHeaders where Self.headerIsSafe(name, value) { list = curl_slist_append(list, "\(name): \(value)") }
        // A body is sent at once: no `Expect: 100-continue` round trip (a second's wait on servers that ignore it).
        if body != nil { list = curl_slist_append(list, "Expect:") }
        defer { curl_slist_free_all(list) }
        let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        defer { errorBuffer.deallocate() }
        let context = Unmanaged.passUnretained(self).toOpaque()
        let totalMS = max(1, Int((hardDeadline - ContinuousClock.now).inMilliseconds))

        _ = nfldb_curl_setopt_string(handle, CURLOPT_URL, url)
        // Only HTTP(S), also for redirects (which are not followed anyway): file:// or gopher:// never.
        _ = nfldb_curl_setopt_string(handle, CURLOPT_PROTOCOLS_STR, "http,https")
        _ = nfldb_curl_setopt_string(handle, CURLOPT_REDIR_PROTOCOLS_STR, "http,https")
        _ = nfldb_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        _ = nfldb_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = nfldb_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(connectTimeout.inMilliseconds)))
        _ = nfldb_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, totalMS)
        // Any encoding libcurl decodes (gzip, deflate, …): the parser sees the decoded CSV.
        _ = nfldb_curl_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, "")
        _ = nfldb_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        if let body {
            // POSTFIELDSIZE first, so COPYPOSTFIELDS copies exactly these bytes (NULs included).
            _ = nfldb_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, body.count)
            if body.isEmpty {
                _ = nfldb_curl_setopt_string(handle, CURLOPT_COPYPOSTFIELDS, "")
            } else {
                body.withUnsafeBytes { bytes in
                    _ = nfldb_curl_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress!))
                }
            }
        }
        if method != "GET" && !(method == "POST" && body != nil) {
            _ = nfldb_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
        }
        _ = nfldb_curl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(errorBuffer))
        _ = nfldb_curl_setopt_data_callback(handle, CURLOPT_HEADERFUNCTION, { data, size, count, context in
            guard let data, let context else { return 0 }
            return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().header(data, size * count)
        })
        _ = nfldb_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
        _ = nfldb_curl_setopt_data_callback(handle, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            guard let data, let context else { return 0 }
            return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().body(data, size * count)
        })
        _ = nfldb_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        // Called at least once a second, also while connecting or waiting: lets stop() end those too.
        _ = nfldb_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
        _ = nfldb_curl_setopt_xferinfo_callback(handle, { context, _, _, _, _ in
            guard let context else { return 1 }
            return Unmanaged<CurlTransfer>.fromOpaque(context).takeUnretainedValue().shouldAbort ? 1 : 0
        })
        _ = nfldb_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context)

        let code = curl_easy_perform(handle)
        if code == CURLE_OK {
            finish(failure: nil)
        } else {
            let detail = String(cString: errorBuffer)
            finish(failure: Failure(message: detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail,
                                    couldNotConnect: code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST,
                                    timedOut: code == CURLE_OPERATION_TIMEDOUT))
        }
    }

    private var shouldAbort: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopped || ContinuousClock.now >= hardDeadline
    }

    private func finish(failure: Failure?) {
        condition.lock()
        finished = true
        if self.failure == nil {
            self.failure = failure ?? (response == nil ? Self.closedBeforeResponse : nil)
        }
        condition.broadcast()
        condition.unlock()
    }

    /// One header line (with its CRLF). A status line starts a response; the blank line ends its
    /// headers, and the response is final unless it is 1xx (`100 Continue`).
    private func header(_ data: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        let line = String(decoding: UnsafeRawBufferPointer(start: data, count: count), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        condition.lock()
        defer { condition.unlock() }
        if stopped { return 0 }
        if line.hasPrefix("HTTP/") {
            let parts = line.split(separator: " ", maxSplits: 2)
            status = parts.count > 1 ? Int(parts[1]) : nil
            headers = [:]
        } else if line.isEmpty {
            if let status, !(100..<200).contains(status) {
                response = Response(status: status, headers: headers)
                lastArrival = ContinuousClock.now
                condition.broadcast()
            }
        } else if let colon = line.firstIndex(of: ":") {
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return count
    }

    /// A piece of the body: waits while the buffer is full; 0 (abort) once stopped or past the deadline.
    private func body(_ data: UnsafeMutablePointer<CChar>, _ count: Int) -> Int {
        let piece = Data(bytes: data, count: count)
        condition.lock()
        defer { condition.unlock() }
        while !stopped && buffered >= Self.bufferLimit && ContinuousClock.now < hardDeadline {
            _ = condition.wait(until: Date().addingTimeInterval(0.25))
        }
        if stopped || ContinuousClock.now >= hardDeadline { return 0 }
        chunks.append(piece)
        buffered += count
        receivedBytes += count
        lastArrival = ContinuousClock.now
        condition.broadcast()
        return count
    }
}
