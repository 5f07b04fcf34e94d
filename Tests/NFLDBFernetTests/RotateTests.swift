import Foundation
import NFLDBCore
@testable import NFLDBCrypt
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@testable import NFLDBFernet

/// A table of Fernet tokens under an old key, and the keys as environment references.
struct RotateWorld {
    let database: TestDatabase
    let old: FernetKey
    let new: FernetKey
    var environment: [String: String] { ["K_OLD": old.encoded, "K_NEW": new.encoded] }
    var ring: KeyRing { KeyRing(references: [try! KeyReference(parsing: "env:K_NEW"), try! KeyReference(parsing: "env:K_OLD")], keys: [new, old]) }

    static func with(_ body: (RotateWorld) throws -> Void) throws {
        try TestCluster.withDatabase(prefix: "crypt") { database in
            try body(RotateWorld(database: database, old: try FernetKey.generate(), new: try FernetKey.generate()))
        }
    }

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }()

    static func value(_ id: Int) -> String { "ssn-\(id)-\(String(repeating: "x", count: id % 7))" }

    /// `public.cards(id int PK, secret text)` with `count` rows under the old key (every 10th NULL),
    /// plus `cards_orig`, a copy for comparison.
    func seed(_ connection: PostgresConnection, count: Int, table: String = "cards") throws {
        try connection.runScript(unsafeSQL: "CREATE TABLE \(PostgresIdentifier.quote(table)) (id int PRIMARY KEY, secret text, note text DEFAULT 'n')")
        let fernet = try Fernet(key: old)
        var ids: [String] = [], tokens: [String?] = []
        for id in 1...count {
            ids.append(String(id))
            tokens.append(id % 10 == 0 ? nil : try fernet.encrypt(Array(Self.value(id).utf8), now: 1_700_000_000 + Int64(id)))
        }
        let idArray = "{" + ids.joined(separator: ",") + "}"
        let tokenArray = "{" + tokens.map { $0.map { "\"\($0)\"" } ?? "NULL" }.joined(separator: ",") + "}"
        try connection.execute("INSERT INTO \(identifier: table) (id, secret) SELECT * FROM unnest(\(idArray)::int[], \(tokenArray)::text[])")
        try connection.execute("CREATE TABLE \(identifier: table + "_orig") AS SELECT * FROM \(identifier: table)")
    }

    /// Every row: NULL stays NULL, and the value decrypts to the original plaintext with `key` alone.
    func assertAllUnder(_ key: FernetKey, _ connection: PostgresConnection, table: String = "cards", keepTimestamps: Bool = true) throws {
        let fernet = try Fernet(key: key)
        let rows = try connection.query("SELECT id, secret FROM \(identifier: table) ORDER BY id").rows
        #expect(!rows.isEmpty)
        for row in rows {
            let id = try row.decode("id", as: Int.self)
            guard let token = row["secret"] else {
                #expect(id % 10 == 0, "row \(id) lost its value")
                continue
            }
            #expect(String(decoding: try fernet.decrypt(token), as: UTF8.self) == Self.value(id), "row \(id)")
            if keepTimestamps { #expect(try Fernet.unverifiedTimestamp(token) == 1_700_000_000 + Int64(id)) }
        }
    }

    func rotate(_ extra: [String] = [], table: String = "cards", column: String = "secret", keys: String = "env:K_NEW,env:K_OLD") throws -> ProcessResult {
        try CLIRunner.run(
            ["crypt", "rotate", "--dsn", database.dsn, "--table", table, "--column", column, "--key-ref", keys] + extra,
            environment: environment)
    }
}

@Suite("crypt rotate against a real server", .serialized)
struct RotateTests {
    @Test("two keys: every row ends up under the new key only, timestamps kept, NULLs untouched; a second run changes nothing")
    func rotatesEverything() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            try world.seed(connection, count: 2345)
            // A few rows already under the new key.
            let fresh = try Fernet(key: world.new)
            for id in [1, 2, 3] {
                let token = try fresh.encrypt(Array(RotateWorld.value(id).utf8), now: 1_700_000_000 + Int64(id))
                try connection.execute("UPDATE cards SET secret = \(token) WHERE id = \(id)")
            }
            let report = try ColumnRotator(connection: connection, ring: world.ring, logger: TestCluster.logger).run({
                var o = RotationOptions(table: "cards", column: "secret")
                o.batchSize = 300
                return o
            }())
            #expect(report.scanned == 2345)
            #expect(report.nulls == 234)
            #expect(report.alreadyCurrent == 3)
            #expect(report.rotated == 2345 - 234 - 3)
            #expect(report.openedBy.map(\.reference) == ["env:K_OLD"] && report.openedBy.map(\.rows) == [2345 - 234 - 3])
            #expect(report.batches == 8)
            #expect(report.undecryptableCount == 0 && report.complete)
            #expect(report.keyColumns == ["id"])
            // Batches commit asynchronously; the run ends with a synchronous flush and leaves the session synchronous.
            #expect(try connection.query("SHOW synchronous_commit").scalar(String.self) == "on")
            try world.assertAllUnder(world.new, connection)
            #expect(try connection.query("SELECT count(*) FROM cards c JOIN cards_orig o USING (id) WHERE c.note IS DISTINCT FROM o.note").scalar(Int.self) == 0)
            // Old key alone no longer opens anything.
            let token = try connection.query("SELECT secret FROM cards WHERE id = 5").scalar(String.self)
            #expect(throws: FernetError.signatureMismatch) { try Fernet(key: world.old).decrypt(token) }
            // Through the CLI: nothing left to do.
            let again = try world.rotate()
            #expect(again.status == 0, "\(again.standardError)")
            #expect(again.standardOutput.contains("0 re-encrypted, 2111 already under the newest key, 234 NULL, 0 undecryptable"), "\(again.standardOutput)")
            #expect(!again.standardOutput.contains(world.new.encoded) && !again.standardError.contains(world.new.encoded))
        }
    }

    @Test("kill -9 mid-run leaves only whole batches (each row old or new, never broken); the re-run completes")
    func interruptedThenResumed() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            try world.seed(connection, count: 30000)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CLIRunner.binary)
            process.arguments = ["crypt", "rotate", "--dsn", world.database.dsn, "--table", "cards", "--column", "secret", "--key-ref", "env:K_NEW,env:K_OLD", "--batch-size", "50"]
            process.environment = ProcessInfo.processInfo.environment.merging(world.environment) { _, new in new }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let deadline = ContinuousClock.now + .seconds(60)
            var changed = 0
            while ContinuousClock.now < deadline {
                changed = try connection.query("SELECT count(*) FROM cards c JOIN cards_orig o USING (id) WHERE c.secret IS DISTINCT FROM o.secret").scalar(Int.self)
                if changed >= 500 { break }
                Thread.sleep(forTimeInterval: 0.01)
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)
            let afterKill = try connection.query("SELECT count(*) FROM cards c JOIN cards_orig o USING (id) WHERE c.secret IS DISTINCT FROM o.secret").scalar(Int.self)
            #expect(afterKill >= 500 && afterKill < 27000, "killed too late to test anything: \(afterKill) rows changed")
            // Every row opens with one of the two keys to its original value.
            try world.assertEachOpensWithEitherKey(connection)
            // The session's advisory lock died with the process; the re-run finishes the job.
            let rerun = try world.rotate(["--format", "json"])
            #expect(rerun.status == 0, "\(rerun.standardError)")
            let report = try RotateWorld.decoder.decode(RotationReport.self, from: Data(rerun.standardOutput.utf8))
            #expect(report.alreadyCurrent == afterKill)
            #expect(report.rotated == 27000 - afterKill)
            try world.assertAllUnder(world.new, connection)
        }
    }

    @Test("read-ahead pipeline: rows the application changes after they were read are left as the application wrote them; undecryptable rows in later batches are reported; a re-run finishes")
    func pipelineKeepsPromises() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            try world.seed(connection, count: 3000)
            // Rows no key opens, in later batches (batch size 200: batches 13 and 15).
            let stranger = try Fernet(key: FernetKey.generate()).encrypt("from another system")
            try connection.execute("UPDATE cards SET secret = \(stranger) WHERE id = 2501")
            try connection.execute("UPDATE cards SET secret = 'not a token' WHERE id = 2999")
            let app = try world.database.connect()
            defer { app.close() }
            // The application's own writes while batch 3 (ids 401-600) is about to be written: one value
            // under the old key, one already under the new key, and one in batch 4, which the reader
            // may or may not have read ahead by then.
            let appOld = try Fernet(key: world.old).encrypt("app wrote this", now: 1_800_000_000)
            let appNew = try Fernet(key: world.new).encrypt("app wrote that", now: 1_800_000_001)
            let appLater = try Fernet(key: world.old).encrypt("app wrote later", now: 1_800_000_002)
            let rotator = ColumnRotator(connection: connection, ring: world.ring, logger: TestCluster.logger, readerOptions: ConnectionOptions(dsn: world.database.dsn))
            var hooked: [Int] = []
            rotator.beforeWrite = { batch in
                hooked.append(batch)
                guard batch == 3 else { return }
                try app.execute("UPDATE cards SET secret = \(appOld) WHERE id = 452")
                try app.execute("UPDATE cards SET secret = \(appNew) WHERE id = 453")
                try app.execute("UPDATE cards SET secret = \(appLater) WHERE id = 651")
            }
            var options = RotationOptions(table: "cards", column: "secret")
            options.batchSize = 200
            var steps: [RotationProgress] = []
            let report = try rotator.run(options) { steps.append($0) }
            #expect(report.batches == 15)
            #expect(hooked == Array(1...15))
            #expect(steps.map(\.scanned) == (1...15).map { $0 * 200 })
            #expect(report.scanned == 3000 && report.nulls == 300)
            #expect(report.undecryptableCount == 2)
            #expect(report.undecryptable.map(\.key) == ["id=2501", "id=2999"])
            // 452 and 453 were read before the application changed them: left alone, counted.
            #expect(report.changedConcurrently >= 2 && report.changedConcurrently <= 3, "\(report.changedConcurrently)")
            #expect(report.rotated + report.changedConcurrently + report.undecryptableCount == 2700)
            #expect(!report.complete)
            #expect(try connection.query("SELECT secret FROM cards WHERE id = 452").scalar(String.self) == appOld)
            #expect(try connection.query("SELECT secret FROM cards WHERE id = 453").scalar(String.self) == appNew)
            #expect(try connection.query("SELECT secret FROM cards WHERE id = 2501").scalar(String.self) == stranger)
            #expect(try connection.query("SELECT secret FROM cards WHERE id = 2999").scalar(String.self) == "not a token")
            // 651: either read after the change (rotated: the application's value, under the new key)
            // or before (left alone): never the stale value.
            let multi = try MultiFernet(keys: [world.new, world.old])
            let token651 = try connection.query("SELECT secret FROM cards WHERE id = 651").scalar(String.self)
            #expect(String(decoding: try multi.decrypt(token651), as: UTF8.self) == "app wrote later")
            // The re-run rotates what was left (but the two undecryptable rows), keeping the application's values.
            let again = try ColumnRotator(connection: connection, ring: world.ring, logger: TestCluster.logger, readerOptions: ConnectionOptions(dsn: world.database.dsn)).run(options)
            #expect(again.changedConcurrently == 0 && again.undecryptableCount == 2)
            // 452 (and 651 if it was left) are rotated now; 453 is already under the new key.
            #expect(again.rotated == report.changedConcurrently - 1)
            let newOnly = try Fernet(key: world.new)
            for (id, value) in [(452, "app wrote this"), (453, "app wrote that"), (651, "app wrote later")] {
                let token = try connection.query("SELECT secret FROM cards WHERE id = \(id)").scalar(String.self)
                #expect(String(decoding: try newOnly.decrypt(token), as: UTF8.self) == value, "row \(id)")
            }
            #expect(try Fernet.unverifiedTimestamp(try connection.query("SELECT secret FROM cards WHERE id = 452").scalar(String.self)) == 1_800_000_000)
            for row in try connection.query("SELECT id, secret FROM cards WHERE id NOT IN (452, 453, 651, 2501, 2999) ORDER BY id").rows {
                let id = try row.decode("id", as: Int.self)
                guard let token = row["secret"] else {
                    #expect(id % 10 == 0)
                    continue
                }
                #expect(String(decoding: try newOnly.decrypt(token), as: UTF8.self) == RotateWorld.value(id), "row \(id)")
                #expect(try Fernet.unverifiedTimestamp(token) == 1_700_000_000 + Int64(id))
            }
        }
    }

    @Test("a bytea column of token bytes is rotated too; a non-UTF-8 value is reported by its key and left byte for byte")
    func byteaColumn() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            try world.seed(connection, count: 1234)
            try connection.runScript(unsafeSQL: """
                CREATE TABLE cards_bin AS SELECT id, convert_to(secret, 'UTF8') AS secret FROM cards;
                ALTER TABLE cards_bin ADD PRIMARY KEY (id);
                INSERT INTO cards_bin VALUES (5000, '\\xff00fe5c22'::bytea);
                CREATE TABLE cards_bin_orig AS SELECT * FROM cards_bin;
                """)
            let result = try world.rotate(["--batch-size", "200", "--format", "json"], table: "cards_bin")
            #expect(result.status == 1, "\(result.standardOutput)\(result.standardError)")
            let report = try RotateWorld.decoder.decode(RotationReport.self, from: Data(result.standardOutput.utf8))
            #expect(report.rotated == 1234 - 123)
            #expect(report.nulls == 123)
            #expect(report.undecryptableCount == 1 && report.undecryptable.first?.key == "id=5000", "\(report.undecryptable)")
            let fernet = try Fernet(key: world.new)
            let rows = try connection.query("SELECT id, convert_from(secret, 'UTF8') AS token FROM cards_bin WHERE id < 5000 AND secret IS NOT NULL ORDER BY id").rows
            #expect(rows.count == 1234 - 123)
            for row in rows {
                let id = try row.decode("id", as: Int.self)
                let token = try #require(row["token"])
                #expect(String(decoding: try fernet.decrypt(token), as: UTF8.self) == RotateWorld.value(id), "row \(id)")
                #expect(try Fernet.unverifiedTimestamp(token) == 1_700_000_000 + Int64(id))
            }
            #expect(try connection.query("SELECT count(*) FROM cards_bin c JOIN cards_bin_orig o USING (id) WHERE c.id = 5000 AND c.secret = o.secret").scalar(Int.self) == 1)
            #expect(try connection.query("SELECT count(*) FROM cards_bin WHERE secret IS NULL").scalar(Int.self) == 123)
        }
    }

    @Test("a row no key opens is reported by its key, left byte for byte as it was, and exits 1; the rest is rotated")
    func undecryptableRowLeftAlone() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            try world.seed(connection, count: 50)
            let stranger = try Fernet(key: FernetKey.generate()).encrypt("from another system")
            try connection.execute("UPDATE cards SET secret = \(stranger) WHERE id = 17")
            try connection.execute("UPDATE cards SET secret = 'not a token' WHERE id = 18")
            let result = try world.rotate()
            #expect(result.status == 1)
            #expect(result.standardOutput.contains("undecryptable: id=17: the token's HMAC does not match"), "\(result.standardOutput)")
            #expect(result.standardOutput.contains("undecryptable: id=18: not a Fernet token"))
            #expect(result.standardError.contains("2 rows of public.cards.secret open with none of the 2 keys; left unchanged"), "\(result.standardError)")
            #expect(try connection.query("SELECT secret FROM cards WHERE id = 17").scalar(String.self) == stranger)
            #expect(try connection.query("SELECT secret FROM cards WHERE id = 18").scalar(String.self) == "not a token")
            let fernet = try Fernet(key: world.new)
            for id in [16, 19, 49] {
                let token = try connection.query("SELECT secret FROM cards WHERE id = \(id)").scalar(String.self)
                #expect(String(decoding: try fernet.decrypt(token), as: UTF8.self) == RotateWorld.value(id))
            }
        }
    }

    @Test("identifiers with quotes and spaces, a composite key of mixed types; a missing key, no primary key and a non-text column are refused clearly")
    func hostileIdentifiersAndRefusals() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            let fernet = try Fernet(key: world.old)
            try connection.runScript(unsafeSQL: #"""
                CREATE SCHEMA "Odd ""Schema""";
                CREATE TABLE "Odd ""Schema"""."card data" ("Season" int, "play id" text, "Secret Value" text, PRIMARY KEY ("Season", "play id"));
                CREATE TABLE nokey (secret text);
                CREATE TABLE numbers (id int PRIMARY KEY, secret int);
                """#)
            var expected: [String: String] = [:]
            for season in 2020...2024 {
                for play in ["a", "b b", "c\"q", "d'e", "é\\f"] {
                    let value = "\(season)-\(play)"
                    expected["\(season)|\(play)"] = value
                    try connection.execute("INSERT INTO \(qualified: "Odd \"Schema\"", "card data") VALUES (\(season), \(play), \(try fernet.encrypt(value)))")
                }
            }
            let result = try world.rotate(["--batch-size", "3"], table: "\"Odd \"\"Schema\"\"\".\"card data\"", column: "Secret Value")
            #expect(result.status == 0, "\(result.standardError)")
            #expect(result.standardOutput.contains("25 re-encrypted"), "\(result.standardOutput)")
            let newFernet = try Fernet(key: world.new)
            let rows = try connection.query("SELECT \"Season\"::text AS s, \"play id\" AS p, \"Secret Value\" AS v FROM \(qualified: "Odd \"Schema\"", "card data")").rows
            #expect(rows.count == 25)
            for row in rows {
                let opened = String(decoding: try newFernet.decrypt(row["v"] ?? ""), as: UTF8.self)
                #expect(opened == expected["\(row["s"] ?? "")|\(row["p"] ?? "")"])
            }
            let injection = try world.rotate(table: "numbers; DROP TABLE numbers")
            #expect(injection.status == 2, "\(injection.standardError)")
            #expect(injection.standardError.contains("numbers; DROP TABLE numbers"), "\(injection.standardError)")
            #expect(try connection.query("SELECT count(*) FROM numbers").scalar(Int.self) == 0)
            let missing = try world.rotate(table: "nosuch")
            #expect(missing.status == 2 && missing.standardError.contains("table nosuch not found"))
            let noKey = try world.rotate(table: "nokey")
            #expect(noKey.status == 2 && noKey.standardError.contains("has no primary key"))
            let numbers = try world.rotate(table: "numbers")
            #expect(numbers.status == 2 && numbers.standardError.contains("is integer, not a text type"), "\(numbers.standardError)")
            let badColumn = try world.rotate(table: "numbers", column: "nope")
            #expect(badColumn.status == 2 && badColumn.standardError.contains("column nope not found in public.numbers"))
        }
    }

    @Test("privileges: SELECT + UPDATE on the table suffice; a role with SELECT only gets 42501 and nothing changes")
    func privileges() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            try world.seed(connection, count: 40)
            let reader = "crypt_reader_\(getpid())", writer = "crypt_writer_\(getpid())"
            try connection.execute("CREATE ROLE \(identifier: reader) NOLOGIN")
            try connection.execute("CREATE ROLE \(identifier: writer) NOLOGIN")
            defer {
                _ = try? connection.execute("RESET ROLE")
                _ = try? connection.execute("DROP OWNED BY \(identifier: reader), \(identifier: writer)")
                _ = try? connection.execute("DROP ROLE \(identifier: reader)")
                _ = try? connection.execute("DROP ROLE \(identifier: writer)")
            }
            try connection.execute("GRANT SELECT ON cards TO \(identifier: reader)")
            try connection.execute("GRANT SELECT, UPDATE ON cards TO \(identifier: writer)")
            try connection.execute("SET ROLE \(identifier: reader)")
            #expect {
                try ColumnRotator(connection: connection, ring: world.ring, logger: TestCluster.logger).run(RotationOptions(table: "cards", column: "secret"))
            } throws: { error in
                (error as? PostgresError)?.sqlState == "42501"
            }
            try connection.execute("RESET ROLE")
            #expect(try connection.query("SELECT count(*) FROM cards c JOIN cards_orig o USING (id) WHERE c.secret IS DISTINCT FROM o.secret").scalar(Int.self) == 0)
            // The same through the command, several batches (the read-ahead thread holds slots when the
            // first UPDATE fails): the error and exit 1, not a crash (libdispatch's semaphore trap, exit 132).
            let cli = try CLIRunner.run(
                ["crypt", "rotate", "--dsn", world.database.dsn + " options='-c role=\(reader)'", "--table", "cards", "--column", "secret",
                 "--key-ref", "env:K_NEW,env:K_OLD", "--batch-size", "10"], environment: world.environment)
            #expect(cli.status == 1, "\(cli.status) \(cli.standardError)")
            #expect(cli.standardError.contains("permission denied for table cards") && cli.standardError.contains("42501"), "\(cli.standardError)")
            #expect(!cli.standardError.contains("crashed"))
            #expect(try connection.query("SELECT count(*) FROM cards c JOIN cards_orig o USING (id) WHERE c.secret IS DISTINCT FROM o.secret").scalar(Int.self) == 0)
            try connection.execute("SET ROLE \(identifier: writer)")
            let report = try ColumnRotator(connection: connection, ring: world.ring, logger: TestCluster.logger).run(RotationOptions(table: "cards", column: "secret"))
            #expect(report.rotated == 36)
            try connection.execute("RESET ROLE")
            try world.assertAllUnder(world.new, connection)
        }
    }

    @Test("two rotates at once: the second refuses (or waits with --lock-wait) and nothing is corrupted")
    func concurrentRotates() throws {
        try RotateWorld.with { world in
            let connection = try world.database.connect()
            defer { connection.close() }
            try world.seed(connection, count: 20000)
            // Hold the column's lock from a test session first, so the refusal is certain.
            let holder = try world.database.connect()
            let key = AdvisoryLockKey("nfldb crypt rotate public.cards.secret")
            #expect(try holder.tryAdvisoryLock(key))
            let refused = try world.rotate()
            #expect(refused.status == 1)
            #expect(refused.standardError.contains("could not take advisory lock nfldb crypt rotate public.cards.secret"), "\(refused.standardError)")
            #expect(refused.standardError.contains("held by pid \(holder.backendPID)"))
            #expect(refused.standardError.contains("within 0.0 s") && refused.standardError.contains("wait longer with --lock-wait"), "\(refused.standardError)")
            holder.close()
            // Now two real runners at once, both willing to wait: both succeed, the rows are rotated exactly once.
            let results = Mutex<[ProcessResult]>([])
            let group = DispatchGroup()
            for _ in 0..<2 {
                DispatchQueue.global().async(group: group) {
                    if let result = try? world.rotate(["--lock-wait", "60s", "--batch-size", "500", "--format", "json"]) {
                        results.withLock { $0.append(result) }
                    }
                }
            }
            group.wait()
            let both = results.withLock { $0 }
            #expect(both.count == 2)
            #expect(both.allSatisfy { $0.status == 0 }, "\(both.map(\.standardError))")
            let reports = try both.map { try RotateWorld.decoder.decode(RotationReport.self, from: Data($0.standardOutput.utf8)) }
            #expect(reports.map(\.rotated).reduce(0, +) == 18000)
            #expect(reports.map(\.rotated).sorted() == [0, 18000])
            try world.assertAllUnder(world.new, connection)
        }
    }
}

import Synchronization

extension RotateWorld {
    /// After a kill: each row opens with the new or the old key to its original value.
    func assertEachOpensWithEitherKey(_ connection: PostgresConnection) throws {
        let multi = try MultiFernet(keys: [new, old])
        for row in try connection.query("SELECT id, secret FROM cards ORDER BY id").rows {
            let id = try row.decode("id", as: Int.self)
            guard let token = row["secret"] else { continue }
            #expect(String(decoding: try multi.decrypt(token), as: UTF8.self) == Self.value(id), "row \(id)")
        }
    }
}
