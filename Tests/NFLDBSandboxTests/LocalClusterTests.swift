import Foundation
import NFLDBCore
import NFLDBSandbox
import NFLDBTestSupport
import Testing

@Suite("LocalCluster and PostgresBinaries (no server started)")
struct LocalClusterTests {
    @Test("freePort returns a port on 127.0.0.1 that can be bound")
    func freePort() throws {
        let port = try LocalCluster.freePort()
        #expect((1024...65535).contains(port))
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        #expect(bound == 0, "bind failed: \(String(cString: strerror(errno)))")
        #expect(listen(fd, 1) == 0)
    }

    @Test("freePort hands out different ports over several calls")
    func distinctPorts() throws {
        let ports = try (0..<5).map { _ in try LocalCluster.freePort() }
        #expect(Set(ports).count > 1)
    }

    @Test("PostgresBinaries.locate finds pg_ctl and initdb")
    func locate() throws {
        let binaries = try PostgresBinaries.locate()
        #expect(FileManager.default.isExecutableFile(atPath: binaries.path("pg_ctl")))
        #expect(FileManager.default.isExecutableFile(atPath: binaries.path("initdb")))
        #expect(FileManager.default.isExecutableFile(atPath: binaries.path("postgres")))
        #expect(binaries.path("pg_ctl") == (binaries.directory as NSString).appendingPathComponent("pg_ctl"))

        let version = try ProcessRunner().run(binaries.path("pg_ctl"), ["--version"])
        #expect(version.succeeded)
        #expect(version.standardOutput.hasPrefix("pg_ctl (PostgreSQL)"))
    }

    @Test("a configured bin_dir is used, and one without pg_ctl is a usage error")
    func configured() throws {
        let real = try PostgresBinaries.locate()
        #expect(try PostgresBinaries.locate(configured: real.directory).directory == real.directory)

        let error = #expect(throws: OperatorError.self) { try PostgresBinaries.locate(configured: "/nonexistent/pg/bin") }
        #expect(error?.exitStatus == .usage)
        #expect(error?.description.contains("postgres.bin_dir /nonexistent/pg/bin has no pg_ctl") == true)
    }

    @Test("isReachable: a 0700 root-owned parent hides a path from the server's OS user when running as root")
    func reachability() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-reach-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let parent = (base as NSString).appendingPathComponent("private")
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        let child = (parent as NSString).appendingPathComponent("sandbox/cluster")
        chmod(base, 0o755)
        chmod(parent, 0o700)

        // Not root, or no OS user: nothing to check.
        #expect(LocalCluster.isReachable(child, byUser: nil))
        #expect(LocalCluster.isReachable(child, byUser: "nfldb-no-such-user"))

        guard ProcessRunner.isRoot, let account = getpwnam("postgres") else {
            #expect(LocalCluster.isReachable(child, byUser: "postgres"), "never blocks when not root")
            return
        }
        #expect(!LocalCluster.isReachable(child, byUser: "postgres"), "0700 root-owned parent")
        chmod(parent, 0o711)
        #expect(LocalCluster.isReachable(child, byUser: "postgres"), "search permission for others is enough")
        chmod(parent, 0o750)
        chown(parent, 0, account.pointee.pw_gid)
        #expect(LocalCluster.isReachable(child, byUser: "postgres"), "group search permission")
        chmod(parent, 0o700)
        chown(parent, account.pointee.pw_uid, 0)
        #expect(LocalCluster.isReachable(child, byUser: "postgres"), "owned by the user")
        chown(parent, 0, 0)
        chmod(base, 0o700)
        chmod(parent, 0o755)
        #expect(!LocalCluster.isReachable(child, byUser: "postgres"), "any blocked ancestor counts")
    }

    @Test("randomPassword is long, URL-safe and different each time")
    func passwords() {
        let a = LocalCluster.randomPassword()
        let b = LocalCluster.randomPassword()
        #expect(a.count == 24)
        #expect(a != b)
        #expect(a.allSatisfy { $0.isLetter || $0.isNumber })
        #expect(LocalCluster.randomPassword(length: 40).count == 40)
    }

    @Test("cluster paths live under the root, and a cluster without postmaster.pid is not running")
    func paths() throws {
        let cluster = LocalCluster(
            root: "/tmp/nfldb-none-\(UUID().uuidString.prefix(8))", port: 1, binaries: PostgresBinaries(directory: "/usr/bin"), osUser: nil)
        #expect(cluster.dataDirectory == cluster.root + "/data")
        #expect(cluster.socketDirectory == cluster.root + "/run")
        #expect(cluster.logFile == cluster.root + "/server.log")
        #expect(cluster.superuser == "postgres")
        #expect(!cluster.isRunning)
        #expect(cluster.postmasterPID == nil)
        try cluster.stop(logger: TestCluster.logger)
    }
}
