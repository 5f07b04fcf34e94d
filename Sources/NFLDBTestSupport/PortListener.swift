import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A listening socket on 127.0.0.1:`port`, so the port is taken ("someone else has it") until
/// ``close()``. SO_REUSEADDR is set: a server that just stopped on that port may leave connections
/// in TIME_WAIT, which would make a plain bind fail now and then; a listener still blocks the port.
public final class PortListener {
    private var fd: Int32

    public init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PortListenerError(port: port, step: "socket") }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { defer { close() }; throw PortListenerError(port: port, step: "bind") }
        guard listen(fd, 1) == 0 else { defer { close() }; throw PortListenerError(port: port, step: "listen") }
    }

    /// Frees the port (also on deinit).
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    deinit { close() }
}

public struct PortListenerError: Error, CustomStringConvertible {
    public let port: Int
    public let step: String
    public let reason = String(cString: strerror(errno))
    public var description: String { "cannot take 127.0.0.1:\(port) (\(step)): \(reason)" }
}
