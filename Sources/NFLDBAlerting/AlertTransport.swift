import Foundation
import NFLDBHTTP

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

/// One POST on libcurl (``HTTPClient``): the whole exchange bounded by `timeout`, at most 1 MiB
/// of response body read. (URLSession, used before, kept reading a response that never ended in
/// the background, and its teardown could wait on it for good.)
public struct CurlAlertTransport: AlertTransport {
    /// The most of a response body that is read (chat and paging APIs answer in bytes).
    public static let maxResponseBytes = 1 << 20

    public init() {}

    public func post(url: URL, body: Data, timeout: TimeInterval) throws -> HTTPReply {
        do {
            let exchange = try HTTPClient.send(
                method: "POST", url: url.absoluteString,
                headers: [("Content-Type", "application/json"), ("User-Agent", "nfldb-health")], body: body,
                timeout: .seconds(max(0.001, timeout)), maxBodyBytes: Self.maxResponseBytes)
            return HTTPReply(status: exchange.status, body: String(decoding: exchange.body, as: UTF8.self))
        } catch {
            throw TransportError(Self.describe(error, timeout: timeout))
        }
    }

    /// The failure without the URL (which may be the secret): libcurl's reason only, without its
    /// "after N ms" tail.
    static func describe(_ error: HTTPClientError, timeout: TimeInterval) -> String {
        func short(_ text: String) -> String {
            text.range(of: " after ").map { String(text[..<$0.lowerBound]) } ?? text
        }
        switch error {
        case .couldNotConnect(let reason): return "connection refused (\(short(reason)))"
        case .timedOut: return "timed out (no answer within \(AlertDispatcher.seconds(timeout)))"
        case .bodyTooLarge(let limit): return "the response body is larger than \(limit / 1024) KiB (not read further)"
        case .failed(let reason): return short(reason)
        }
    }
}
