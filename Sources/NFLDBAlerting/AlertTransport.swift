import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Dispatch

/// An HTTP response: status and body text.
public struct HTTPReply: Sendable {
    public var status: Int
    public var body: String

    public init(status: Int, body: String) {
        self.status = status
        self.body = body
    }
}

/// Why a POST failed before any response (refused, timed out, DNS).
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Sends one JSON POST. The seam the dispatcher uses; tests may pass their own.
public protocol AlertTransport: Sendable {
    func post(url: URL, body: Data, timeout: TimeInterval) throws -> HTTPReply
}

/// Foundation's URLSession (libcurl on Linux), driven synchronously.
public struct URLSessionTransport: AlertTransport {
    public init() {}

    public func post(url: URL, body: Data, timeout: TimeInterval) throws -> HTTPReply {
        // swift-corelibs-foundation truncates request timeouts to whole seconds (0.9 s times out at
        // once), so libcurl gets the next whole second and the exact bound is the wait below.
        let curlTimeout = max(1, timeout.rounded(.up))
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: curlTimeout)
        request.httpMethod = "POST"
        request.httpBody = body
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("nfldb-health", forHTTPHeaderField: "User-Agent")
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = curlTimeout
        configuration.timeoutIntervalForResource = curlTimeout
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let box = ReplyBox()
        let task = session.dataTask(with: request) { data, response, error in
            if let error {
                box.finish(.failure(TransportError(Self.describe(error))))
            } else if let response = response as? HTTPURLResponse {
                box.finish(.success(HTTPReply(status: response.statusCode, body: String(decoding: data ?? Data(), as: UTF8.self))))
            } else {
                box.finish(.failure(TransportError("no HTTP response")))
            }
        }
        task.resume()
        guard box.semaphore.wait(timeout: .now() + max(0, timeout)) == .success, let result = box.result else {
            task.cancel()
            throw TransportError("timed out (no answer within \(AlertDispatcher.seconds(timeout)))")
        }
        return try result.get()
    }

    /// The failure without the URL (which may be the secret): libcurl's reason only.
    static func describe(_ error: any Error) -> String {
        let nsError = error as NSError
        let underlying = (nsError.userInfo[NSUnderlyingErrorKey] as? NSError)?.localizedDescription
        var text = underlying ?? nsError.localizedDescription
        if let range = text.range(of: " after ") { text = String(text[..<range.lowerBound]) }
        switch nsError.code {
        case NSURLErrorTimedOut: return "timed out"
        case NSURLErrorCannotConnectToHost: return "connection refused (\(text))"
        default: return text
        }
    }
}

/// Carries the callback's result back to the waiting thread.
final class ReplyBox: @unchecked Sendable {
    // Invariant: `result` is written once by the URLSession callback before `semaphore` is
    // signalled, and read only after the wait succeeds.
    let semaphore = DispatchSemaphore(value: 0)
    private(set) var result: Result<HTTPReply, TransportError>?

    func finish(_ result: Result<HTTPReply, TransportError>) {
        self.result = result
        semaphore.signal()
    }
}
