import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing
import Synchronization

@Suite("Advisory locks between two sessions")
struct AdvisoryLockTests {
    @Test("a held lock blocks a second session until it is released")
    func contention() throws {
        try TestCluster.withDatabase(prefix: "lock_release") { db in
            let first = try db.connect()
            let second = try db.connect()
            let key = AdvisoryLockKey("nfldb.test.\(UUID().uuidString)")
            #expect(try first.tryAdvisoryLock(key))
            #expect(try !second.tryAdvisoryLock(key))

            var announced: [String?] = []
            let start = ContinuousClock.now
            let timeout = #expect(throws: AdvisoryLockTimeout.self) {
                try second.advisoryLock(key, wait: .milliseconds(300), pollInterval: .milliseconds(50)) { announced.append($0) }
            }
            #expect(ContinuousClock.now - start >= .milliseconds(300))
            let holder = try #require(timeout?.holder)
            #expect(holder.contains("pid \(first.backendPID)"))
            #expect(holder.contains("application nfldb"))
            #expect(announced.count == 1, "onWait is called once")
            #expect(announced.first??.contains("pid \(first.backendPID)") == true)
            let text = try #require(timeout).description
            #expect(text.contains("could not take advisory lock \(key.name)"))
            #expect(text.contains("held by pid \(first.backendPID)"))

            #expect(try first.advisoryUnlock(key))
            #expect(try !first.advisoryUnlock(key), "unlocking a lock not held returns false")
            try second.advisoryLock(key, wait: .seconds(2))
            #expect(try !first.tryAdvisoryLock(key))
            #expect(try first.advisoryLockHolder(key)?.contains("pid \(second.backendPID)") == true)
        }
    }

    @Test("a lock is freed when its holder's backend is terminated")
    func terminatedHolder() throws {
        try TestCluster.withDatabase(prefix: "lock_kill") { db in
            let first = try db.connect()
            let second = try db.connect()
            let key = AdvisoryLockKey("nfldb.test.kill")
            #expect(try first.tryAdvisoryLock(key))
            #expect(try !second.tryAdvisoryLock(key))
            let pid = first.backendPID
            #expect(try second.query("SELECT pg_terminate_backend(\(pid))").scalar(Bool.self))
            try second.advisoryLock(key, wait: .seconds(5), pollInterval: .milliseconds(20))
            #expect(try second.advisoryLockHolder(key)?.contains("pid \(second.backendPID)") == true)

            let lost = #expect(throws: PostgresError.self) { try first.query("SELECT 1") }
            #expect(lost?.kind == .connection)
            #expect(!first.isAlive)
        }
    }

    @Test("advisory locks are per database, and the holder named is the one in this database")
    func perDatabase() throws {
        try TestCluster.withDatabase(prefix: "lock_db_a") { a in
            try TestCluster.withDatabase(prefix: "lock_db_b") { b in
                let key = AdvisoryLockKey("nfldb.test.per-database")
                let elsewhere = try b.connect()
                #expect(try elsewhere.tryAdvisoryLock(key))
                let holder = try a.connect()
                #expect(try holder.tryAdvisoryLock(key), "the same key in another database does not conflict")
                let waiter = try a.connect()
                let timeout = #expect(throws: AdvisoryLockTimeout.self) {
                    try waiter.advisoryLock(key, wait: .milliseconds(100), pollInterval: .milliseconds(20))
                }
                #expect(timeout?.holder?.hasPrefix("pid \(holder.backendPID) ") == true, "\(timeout?.holder ?? "nil")")
                #expect(try #require(timeout?.holder).contains("pid \(elsewhere.backendPID) ") == false)
            }
        }
    }

    @Test("withAdvisoryLock releases the lock after the body, even when it throws")
    func scoped() throws {
        try TestCluster.withDatabase(prefix: "lock_scoped") { db in
            let c = try db.connect()
            let other = try db.connect()
            let key = AdvisoryLockKey("nfldb.test.scoped")
            let inside = try c.withAdvisoryLock(key, wait: .seconds(1)) { try !other.tryAdvisoryLock(key) }
            #expect(inside, "held during the body")
            #expect(throws: Boom()) { try c.withAdvisoryLock(key, wait: .seconds(1)) { throw Boom() } }
            #expect(try other.tryAdvisoryLock(key), "released afterwards")
        }
    }

    @Test("lock keys are stable 64-bit hashes of their names")
    func keys() {
        #expect(AdvisoryLockKey("nfldb.migrations").value == AdvisoryLockKey("nfldb.migrations").value)
        #expect(AdvisoryLockKey("a").value != AdvisoryLockKey("b").value)
        #expect(AdvisoryLockKey("").value == Int64(bitPattern: 0xcbf2_9ce4_8422_2325))
        #expect(AdvisoryLockKey("x").description.hasPrefix("x (key "))
    }
}

@Suite("Session behaviour: notices, application_name, connection errors")
struct SessionTests {
    @Test("RAISE NOTICE and WARNING in a DO block are captured by drainNotices")
    func notices() throws {
        try TestCluster.withDatabase(prefix: "notices") { db in
            let c = try db.connect()
            try c.execute("""
                DO $$
                BEGIN
                  RAISE NOTICE 'loaded % rows', 42;
                  RAISE WARNING 'table % is bloated', 'plays' USING HINT = 'Run VACUUM FULL.', ERRCODE = '01000';
                END
                $$
                """)
            let notices = c.drainNotices()
            #expect(notices.count == 2)
            #expect(notices.first?.severity == "NOTICE")
            #expect(notices.first?.message == "loaded 42 rows")
            #expect(notices.first?.sqlState == "00000")
            #expect(notices.last?.severity == "WARNING")
            #expect(notices.last?.message == "table plays is bloated")
            #expect(notices.last?.hint == "Run VACUUM FULL.")
            #expect(c.drainNotices().isEmpty, "draining empties the queue")

            try c.execute("CREATE TABLE IF NOT EXISTS t (id int)")
            try c.execute("CREATE TABLE IF NOT EXISTS t (id int)")
            #expect(c.drainNotices().map(\.message) == ["relation \"t\" already exists, skipping"])
        }
    }

    @Test("application_name defaults to nfldb; a DSN or the options override it")
    func applicationName() throws {
        try TestCluster.withDatabase(prefix: "appname") { db in
            let c = try db.connect()
            #expect(try c.query("SELECT current_setting('application_name')").scalar(String.self) == "nfldb")
            #expect(c.parameterStatus("application_name") == "nfldb")

            let fromDSN = try PostgresConnection.connect(
                ConnectionOptions(dsn: db.dsn + " application_name=nightly-etl"), logger: TestCluster.logger)
            #expect(try fromDSN.query("SELECT current_setting('application_name')").scalar(String.self) == "nightly-etl")

            let fromOptions = try PostgresConnection.connect(
                ConnectionOptions(dsn: db.dsn, applicationName: "nfldb-tests"), logger: TestCluster.logger)
            #expect(try fromOptions.query("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()")
                .scalar(String.self) == "nfldb-tests")
        }
    }

    @Test("connection facts: version, backend pid, target without password, DateStyle ISO")
    func facts() throws {
        try TestCluster.withDatabase(prefix: "facts") { db in
            let c = try db.connect()
            #expect(c.serverVersionNumber >= 150000)
            #expect(c.serverVersion.hasPrefix("15"))
            #expect(try c.query("SELECT pg_backend_pid()").scalar(Int32.self) == c.backendPID)
            #expect(c.target == "\(db.cluster.host):\(db.cluster.port) db=\(db.name) user=\(db.cluster.superuser)")
            if let password = db.cluster.password { #expect(!c.target.contains(password)) }
            #expect(c.parameterStatus("DateStyle")?.hasPrefix("ISO") == true)
            #expect(c.transactionState == .idle)
            c.close()
            #expect(!c.isAlive)
            c.close()
        }
    }

    @Test("connection refused names host:port and never the password", arguments: [
        "postgresql://etl:secret-pw-123@127.0.0.1:1/nfl",
        "host=127.0.0.1 port=1 user=etl password=secret-pw-123 dbname=nfl",
        "host=127.0.0.1 port=1 user=etl password='secret-pw-123' dbname=nfl",
    ])
    func refused(dsn: String) throws {
        let error = #expect(throws: PostgresError.self) {
            try PostgresConnection.connect(ConnectionOptions(dsn: dsn, connectTimeout: .seconds(3)), logger: TestCluster.logger)
        }
        let failure = try #require(error)
        #expect(failure.kind == .connection)
        #expect(failure.target?.hasPrefix("127.0.0.1:1 ") == true)
        let rendered = [failure.description, failure.message, String(describing: failure), failure.target ?? "", failure.diagnostic.oneLine]
        for text in rendered {
            #expect(text.contains("127.0.0.1:1"))
            #expect(!text.contains("secret-pw-123"), "\(text)")
        }
        #expect(failure.message.hasPrefix("could not connect to PostgreSQL at 127.0.0.1:1 db=nfl user=etl"))
        #expect(failure.message.lowercased().contains("connection refused"))
        // The error in one line (a cron mail subject), then what to do next.
        let lines = failure.description.split(separator: "\n")
        #expect(lines.count == 2 && lines[1].hasPrefix("HINT: Check that PostgreSQL is running"), "\(failure.description)")
        #expect(failure.hint?.contains("pg_isready") == true)
    }

    @Test("a wrong password fails without echoing it")
    func wrongPassword() throws {
        try TestCluster.withDatabase(prefix: "badpw") { db in
            let dsn = db.cluster.dsn(database: db.name, user: db.cluster.superuser, password: "wrong-pw-456")
            let error = #expect(throws: PostgresError.self) {
                try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: TestCluster.logger)
            }
            #expect(error?.kind == .connection)
            #expect(error?.description.contains("password authentication failed") == true)
            #expect(error?.description.contains("wrong-pw-456") == false)
        }
    }

    @Test("an invalid DSN gives a clear error with a hint and without the password", arguments: [
        ("host=localhost port", "missing \"=\" after \"port\""),
        ("this is not a dsn", "missing \"=\" after \"this\""),
        ("host=h password=secret-pw-123 bogus", "missing \"=\" after \"bogus\""),
        ("host=h nosuchoption=1", "invalid connection option \"nosuchoption\""),
        ("postgresql://u:secret-pw-123@h/db?nosuch=1", "invalid URI query parameter: \"nosuch\""),
    ])
    func invalidDSN(dsn: String, problem: String) throws {
        let error = #expect(throws: PostgresError.self) {
            try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: TestCluster.logger)
        }
        let failure = try #require(error)
        #expect(failure.kind == .configuration && failure.exitStatus == .usage)
        #expect(failure.message.hasPrefix("invalid connection string"))
        #expect(failure.message.contains(problem), "\(failure.message)")
        #expect(failure.hint?.contains("key=value pairs") == true)
        #expect(!failure.description.contains("secret-pw-123"))
        #expect(throws: PostgresError.self) { try ConnectionOptions.validate(dsn) }
    }

    @Test("a password libpq read from a password file (passfile=, as ~/.pgpass or PGPASSFILE) is masked like one in the DSN: a server error quoting it prints ********")
    func passwordFromAPasswordFileIsRedacted() throws {
        try TestCluster.withDatabase(prefix: "passfile") { db in
            let admin = try db.connect()
            defer { admin.close() }
            let role = "leaky_\(UUID().uuidString.prefix(8).lowercased())"
            let password = "Sx@b:c/d%e fQ9-\(UUID().uuidString.prefix(6))"
            try admin.execute("CREATE ROLE \(identifier: role) LOGIN PASSWORD \(unsafeRaw: PostgresIdentifier.literal(password))")
            defer { _ = try? admin.execute("DROP ROLE IF EXISTS \(identifier: role)") }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-pgpass-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: file) }
            // .pgpass fields escape ':' and '\\'.
            let escaped = password.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ":", with: "\\:")
            try "*:*:*:\(role):\(escaped)\n".write(toFile: file, atomically: true, encoding: .utf8)
            #expect(chmod(file, 0o600) == 0)
            #expect(SecretRedactor.shared.redact("before: \(password)").contains(password), "not registered before")
            let dsn = db.cluster.dsn(database: db.name, user: role) + " password='' passfile=\(file)"
            let login = try PostgresConnection.connect(ConnectionOptions(dsn: dsn), logger: TestCluster.logger)
            defer { login.close() }
            #expect(!SecretRedactor.shared.redact("after: \(password)").contains(password))
            do {
                try login.execute("SELECT \(unsafeRaw: PostgresIdentifier.literal(password))::int")
                Issue.record("the cast succeeded")
            } catch let error as PostgresError {
                #expect(!error.diagnostic.description.contains(password) && error.diagnostic.description.contains("********"), "\(error.diagnostic.description)")
            }
        }
    }

    @Test("creating ConnectionOptions registers no secret; the caller registers where it resolves one")
    func noRegistrationSideEffect() {
        let options = ConnectionOptions(dsn: "postgresql://u:opts-pw-unregistered-3141@db.example/nfl", password: "opts-pw-field-2718")
        #expect(options.password == "opts-pw-field-2718")
        #expect(SecretRedactor.shared.redact("x opts-pw-unregistered-3141 opts-pw-field-2718") == "x opts-pw-unregistered-3141 opts-pw-field-2718")
    }

    @Test("ConnectionOptions keeps passwords out of subprocess command lines")
    func subprocessOptions() throws {
        let options = ConnectionOptions(dsn: "postgresql://etl:sub-pw-789@db.example:5433/nfl")
        let (conninfo, env) = try options.forSubprocess(environment: [:])
        #expect(!conninfo.contains("sub-pw-789"))
        #expect(conninfo.contains("host='db.example'"))
        #expect(conninfo.contains("port='5433'"))
        #expect(conninfo.contains("application_name='nfldb'"))
        #expect(env["PGPASSWORD"] == "sub-pw-789")
        #expect(options.redactedDSN == "postgresql://etl:\(SecretRedactor.mask)@db.example:5433/nfl")
        let other = try options.withDatabase("scratch")
        #expect(other.dsn?.contains("dbname='scratch'") == true)
        #expect(other.dsn?.contains("sub-pw-789") == false)
        #expect(other.password == "sub-pw-789")
    }

    @Test("conninfo quoting: a database name with a space, a quote and a backslash reaches the server intact")
    func conninfoQuoting() throws {
        #expect(ConnectionOptions.conninfoQuoted(#"my db's \ x"#) == #"'my db\'s \\ x'"#)
        #expect(ConnectionOptions.conninfo([("host", "h"), ("dbname", "a b")]) == "host='h' dbname='a b'")
        let cluster = try TestCluster.shared()
        let name = "nfl db's \\ \(getpid())"
        let admin = try PostgresConnection.connect(ConnectionOptions(dsn: cluster.adminDSN), logger: TestCluster.logger)
        defer {
            _ = try? admin.execute("DROP DATABASE IF EXISTS \(identifier: name) WITH (FORCE)")
            admin.close()
        }
        try admin.execute("CREATE DATABASE \(identifier: name)")
        let conninfo = ConnectionOptions.conninfo([
            ("host", cluster.host), ("port", String(cluster.port)), ("user", cluster.superuser), ("dbname", name),
        ])
        try ConnectionOptions.validate(conninfo)
        let c = try PostgresConnection.connect(ConnectionOptions(dsn: conninfo, password: cluster.password), logger: TestCluster.logger)
        #expect(try c.query("SELECT current_database()").scalar(String.self) == name)
        c.close()
        // withDatabase builds its conninfo through the same helper.
        let scratch = try ConnectionOptions(dsn: cluster.adminDSN).withDatabase(name)
        let d = try PostgresConnection.connect(scratch, logger: TestCluster.logger)
        #expect(try d.query("SELECT current_database()").scalar(String.self) == name)
        d.close()
    }
}

@Suite("Cancelling a running statement from another thread")
struct CancelHandleTests {
    @Test("CancelHandle stops a pg_sleep(30) within seconds with SQLSTATE 57014, and the connection stays usable")
    func cancelFromAnotherThread() throws {
        try TestCluster.withDatabase(prefix: "cancel") { db in
            let conn = try db.connect()
            let handle = try #require(conn.makeCancelHandle())
            let sent = Mutex<Bool>(false)
            let watchError = Mutex<String?>(nil)
            let pid = Int(conn.backendPID)
            let canceller = Thread {
                // Cancel only once the statement is really running: its backend is active in pg_sleep.
                do {
                    let watcher = try db.connect()
                    defer { watcher.close() }
                    try waitUntil("pid \(pid) is running pg_sleep(30)", timeout: .seconds(20)) {
                        try watcher.query("""
                            SELECT count(*)::int FROM pg_stat_activity
                            WHERE pid = \(pid) AND state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'
                            """).scalar(Int.self) == 1
                    }
                } catch {
                    watchError.withLock { $0 = String(describing: error) }
                }
                sent.withLock { $0 = handle.cancelRunningStatement() }
            }
            let start = ContinuousClock.now
            canceller.start()
            let error = #expect(throws: PostgresError.self) {
                try conn.query("SELECT pg_sleep(30)").rows
            }
            let elapsed = ContinuousClock.now - start
            #expect(sent.withLock { $0 })
            #expect(watchError.withLock { $0 } == nil)
            #expect(error?.sqlState == "57014", "query_canceled: \(String(describing: error))")
            #expect(elapsed < .seconds(10), "cancelled after \(elapsed), not after the 30 s sleep")
            #expect(try conn.query("SELECT 1").scalar(Int.self) == 1)
        }
    }
}
