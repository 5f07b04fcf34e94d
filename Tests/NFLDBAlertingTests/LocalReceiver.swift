import Foundation
import Synchronization

/// A tiny HTTP/1.1 server on 127.0.0.1 (POSIX sockets, one thread) that records every request and
/// answers with scripted statuses: the stand-in for Slack, PagerDuty and webhooks in tests.
final class LocalReceiver: Sendable {
    struct Request: Sendable {
        let method: String
        let path: String
        let headers: [String: String]
        let body: Data

        /// The body parsed as a JSON object.
        var json: NSDictionary {
            ((try? JSONSerialization.jsonObject(with: body)) as? NSDictionary) ?? [:]
        }
    }

    struct Script: Sendable {
        var requests: [Request] = []
        var queued: [(Int, String)] = []
        var fallback: (Int, String)
    }

    let port: Int
    private let listener: Int32
    private let script: Mutex<Script>
    private let stopped = Atomic<Bool>(false)

    /// How long each answer waits (a slow receiver; requests are answered one at a time).
    let delay: Duration

    init(status: Int = 200, body: String = "ok", delay: Duration = .zero) throws {
        self.delay = delay
        script = Mutex(Script(fallback: (status, body)))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread.detachNewThread { [self] in serve() }
    }

    deinit { stop() }

    var url: String { "http://127.0.0.1:\(port)" }

    /// Answers the next requests with these statuses, then with the fallback. `{path}` in a body is
    /// replaced by the request's path (with its query).
    func enqueue(_ status: Int, _ body: String = "") {
        script.withLock { $0.queued.append((status, body)) }
    }

    var requests: [Request] { script.withLock { $0.requests } }

    func stop() {
        guard !stopped.exchange(true, ordering: .relaxed) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve() {
        while !stopped.load(ordering: .relaxed) {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var buffer = Data()
        var chunk = [UInt8](repeating: 0, count: 65536)
        func readMore() -> Bool {
            let n = read(client, &chunk, chunk.count)
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        let separator = Data("\r\n\r\n".utf8)
        while buffer.range(of: separator) == nil { if !readMore() { return } }
        guard let end = buffer.range(of: separator) else { return }
        let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        if headers["expect"]?.lowercased() == "100-continue" {
            _ = "HTTP/1.1 100 Continue\r\n\r\n".withCString { write(client, $0, strlen($0)) }
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        var body = Data(buffer[end.upperBound...])
        while body.count < length {
            let n = read(client, &chunk, chunk.count)
            if n <= 0 { break }
            body.append(contentsOf: chunk[0..<n])
        }
        let request = Request(
            method: requestLine.first.map(String.init) ?? "", path: requestLine.dropFirst().first.map(String.init) ?? "",
            headers: headers, body: body)
        var (status, text) = script.withLock { state -> (Int, String) in
            state.requests.append(request)
            return state.queued.isEmpty ? state.fallback : state.queued.removeFirst()
        }
        if delay > .zero { Thread.sleep(forTimeInterval: Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18) }
        // "{path}" in a scripted body echoes the request path, as some receivers' error pages do.
        text = text.replacingOccurrences(of: "{path}", with: request.path)
        // "{authorization}" echoes the Authorization header, "{basic}" its decoded user:password.
        let authorization = request.headers["authorization"] ?? ""
        text = text.replacingOccurrences(of: "{authorization}", with: authorization)
        let basic = authorization.hasPrefix("Basic ") ? Data(base64Encoded: String(authorization.dropFirst(6))).map { String(decoding: $0, as: UTF8.self) } : nil
        text = text.replacingOccurrences(of: "{basic}", with: basic ?? "")
        let response = "HTTP/1.1 \(status) Status\r\nContent-Type: text/plain\r\nContent-Length: \(text.utf8.count)\r\nConnection: close\r\n\r\n\(text)"
        _ = response.withCString { write(client, $0, strlen($0)) }
    }
}
