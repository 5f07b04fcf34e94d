import Foundation
import NFLDBCore

/// A whole HTTP exchange: the final response's status and headers, and its body.
public struct HTTPExchange: Sendable {
    public let status: Int
    public let headers: [String: String]
    public let body: Data
    /// A header's value by case-insensitive name.
    public func value(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Why a request got no whole response.
public enum HTTPClientError: Error, Sendable, CustomStringConvertible {
    /// The connection was refused or could not be made (nothing was sent); libcurl's reason.
    case couldNotConnect(String)
    /// No whole response within the request's timeout (connect, send and read together).
    case timedOut(Duration)
    /// The body went past the limit; the transfer was aborted there.
    case bodyTooLarge(limit: Int)
    /// Anything else libcurl reports (TLS, a reset, a broken-off body).
    case failed(String)

    public var description: String {
        switch self {
        case .couldNotConnect(let reason): return "could not connect (\(reason))"
        case .timedOut(let timeout): return "no whole response within \(timeout)"
        case .bodyTooLarge(let limit): return "the response body is larger than \(limit) bytes (not read further)"
        case .failed(let reason): return reason
        }
    }
}

/// Synchronous requests on ``CurlTransfer`` for callers that want the whole response (webhooks,
/// AWS APIs). Every outcome ends the transfer before returning: a server that never answers or
/// keeps sending is cut off at the timeout or the body limit, and its thread ends within a second.
public enum HTTPClient {
    /// Sends one request and reads the whole response.
    /// - Parameters:
    ///   - timeout: for everything: connecting, sending, and reading the body.
    ///   - maxBodyBytes: the most of a response body that is read; more fails with ``HTTPClientError/bodyTooLarge(limit:)``.
    public static func send(method: String, url: String, headers: [(String, String)], body: Data?,
                            timeout: Duration, maxBodyBytes: Int = 1 << 20) throws(HTTPClientError) -> HTTPExchange {
        let started = ContinuousClock.now
        let deadline = started + timeout
        // libcurl's own deadline a little later: the reader's (and its message) comes first.
        let transfer = CurlTransfer(method: method, url: url, headers: headers, body: body,
                                    connectTimeout: max(timeout, .milliseconds(50)), hardDeadline: deadline + .milliseconds(500))
        defer { transfer.stop() }
        let response: CurlTransfer.Response
        switch transfer.waitForResponse(until: deadline) {
        case .response(let r): response = r
        case .failed(let failure): throw classify(failure, timeout: timeout)
        case .timedOut: throw .timedOut(timeout)
        }
        var received = Data()
        while true {
            let left = deadline - ContinuousClock.now
            switch transfer.next(until: deadline, idle: max(left, .milliseconds(1))) {
            case .data(let data):
                received.append(data)
                if received.count > maxBodyBytes { throw .bodyTooLarge(limit: maxBodyBytes) }
            case .end:
                return HTTPExchange(status: response.status, headers: response.headers, body: received)
            case .failed(let failure):
                if failure.timedOut { throw .timedOut(timeout) }
                throw .failed("the response broke off after \(received.count) bytes: \(failure.message)")
            case .timedOut, .stalled:
                throw .timedOut(timeout)
            }
        }
    }

    static func classify(_ failure: CurlTransfer.Failure, timeout: Duration) -> HTTPClientError {
        if failure.couldNotConnect { return .couldNotConnect(failure.message) }
        if failure.timedOut { return .timedOut(timeout) }
        return .failed(failure.message)
    }
}
