import Foundation
import Logging
import NFLDBCore
import Synchronization

/// A minimal HTTP/1.0 server for Prometheus scrapes, bound to 127.0.0.1 only: `GET /metrics`
/// answers `body()` as `text/plain; version=0.0.4`; anything else is 404 (405 for other methods).
/// One thread accepts and answers requests one at a time (a scrape every few seconds).
public final class MetricsServer: Sendable {
    /// The bound port (the one asked for, or the kernel's choice for 0).
    public let port: Int
    private let socket: Int32
    private let stopped = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    /// Binds 127.0.0.1:`port` and starts answering on a thread of its own.
    /// - Throws: ``OperatorError`` naming the port when it cannot be bound (in use, privileged).
    public init(port: Int, logger: Logger, body: @escaping @Sendable () -> String) throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw OperatorError("cannot create a socket for --metrics-port: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(clamping: port)).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw OperatorError("cannot listen on 127.0.0.1:\(port) for --metrics-port: \(reason)",
                                hint: "Choose a free port (check with `ss -ltnp`), or omit --metrics-port.")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.socket = fd
        let thread = Thread { [self] in
            self.serve(logger: logger, body: body)
            self.finished.store(true, ordering: .sequentiallyConsistent)
        }
        thread.name = "nfldb-metrics"
        thread.start()
        logger.info("metrics on http://127.0.0.1:\(self.port)/metrics")
    }

    /// Stops accepting and closes the socket; waits up to 2 s for a scrape in progress.
    public func stop() {
        guard !stopped.exchange(true, ordering: .sequentiallyConsistent) else { return }
        shutdown(socket, Int32(SHUT_RDWR))
        let deadline = ContinuousClock.now + .seconds(2)
        while !finished.load(ordering: .sequentiallyConsistent) && ContinuousClock.now < deadline { Thread.sleep(forTimeInterval: 0.01) }
        close(socket)
    }

    private func serve(logger: Logger, body: @Sendable () -> String) {
        while !stopped.load(ordering: .sequentiallyConsistent) {
            let client = accept(socket, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                if !stopped.load(ordering: .sequentiallyConsistent) { logger.warning("metrics: accept failed: \(String(cString: strerror(errno)))") }
                return
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            answer(client, body: body)
            close(client)
        }
    }

    private func answer(_ client: Int32, body: @Sendable () -> String) {
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while request.count < 16_384 {
            let n = recv(client, &buffer, buffer.count, 0)
            guard n > 0 else { break }
            request += buffer[0..<n]
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] || String(decoding: request, as: UTF8.self).contains("\r\n\r\n") { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let status: String
        var text: String
        var type = "text/plain; charset=utf-8"
        if line.count < 2 {
            status = "400 Bad Request"
            text = "bad request\n"
        } else if line[0] != "GET" {
            status = "405 Method Not Allowed"
            text = "only GET /metrics\n"
        } else if line[1] == "/metrics" || line[1].hasPrefix("/metrics?") {
            status = "200 OK"
            text = body()
            type = "text/plain; version=0.0.4; charset=utf-8"
        } else {
            status = "404 Not Found"
            text = "not found: try /metrics\n"
        }
        let payload = Array(text.utf8)
        let response = Array("HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n".utf8) + payload
        var sent = 0
        while sent < response.count {
            let n = response[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }
}
