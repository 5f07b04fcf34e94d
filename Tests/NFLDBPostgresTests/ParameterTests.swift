import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("Query parameters and identifiers")
struct ParameterTests {
    @Test("interpolated values become $n binds, never SQL text")
    func bindsNotText() {
        let team = "Bears"
        let season = 2024
        let none: String? = nil
        let query: PostgresQuery = "SELECT * FROM games WHERE home = \(team) AND season = \(season) AND note = \(none)"
        #expect(query.sql == "SELECT * FROM games WHERE home = $1 AND season = $2 AND note = $3")
        #expect(query.binds == ["Bears", "2024", nil])
        #expect(query.description == query.sql, "descriptions never print bound values")
        #expect(!String(describing: query).contains("Bears"))

        let named: PostgresQuery = "SELECT \(identifier: "Odd\"Name") FROM \(qualified: "nfl", "games") WHERE x = \(unsafeRaw: "1")"
        #expect(named.sql == #"SELECT "Odd""Name" FROM "nfl"."games" WHERE x = 1"#)
        #expect(named.binds.isEmpty)
    }

    @Test("an embedded query keeps its own binds, renumbered; $n inside its literals and bodies is left alone")
    func fragments() throws {
        let inner: PostgresQuery = "UPDATE t SET note = '$1 stays', body = $$ $2 $$ WHERE id = \(7) AND tag = \("x")"
        let outer: PostgresQuery = "WITH m AS (\(fragment: inner) RETURNING id) SELECT \("first") AS a, \(fragment: inner), \(3)"
        #expect(outer.sql == "WITH m AS (UPDATE t SET note = '$1 stays', body = $$ $2 $$ WHERE id = $1 AND tag = $2 RETURNING id) SELECT $3 AS a, UPDATE t SET note = '$1 stays', body = $$ $2 $$ WHERE id = $4 AND tag = $5, $6")
        #expect(outer.binds == ["7", "x", "first", "7", "x", "3"])
        // Nested twice: placeholders stay tracked through an embedding.
        let twice: PostgresQuery = "\(1) \(fragment: outer)"
        #expect(twice.sql.hasSuffix("tag = $6, $7"))
        #expect(twice.binds.count == 7)
        let empty: PostgresQuery = ""
        let withEmpty: PostgresQuery = "SELECT \(1)\(fragment: empty)"
        #expect(withEmpty.sql == "SELECT $1")
        try TestCluster.withDatabase(prefix: "params_frag") { db in
            let c = try db.connect()
            let part: PostgresQuery = "SELECT '$1'::text AS lit, \("b")::text AS v"
            let row = try c.query("SELECT \("a")::text AS first, s.lit, s.v FROM (\(fragment: part)) s").singleRow()
            #expect(row["first"] == "a")
            #expect(row["lit"] == "$1")
            #expect(row["v"] == "b")
        }
    }

    @Test("every encodable type round-trips through the server")
    func roundTrip() throws {
        try TestCluster.withDatabase(prefix: "params_rt") { db in
            let c = try db.connect()
            let text = "it's \"quoted\" \\ back; -- not a comment\n\ttabbed ünïcode"
            let big = Int64.max
            let small: Int16 = -12
            let id = UUID()
            let when = Date(timeIntervalSince1970: 1_725_567_600.123456)
            let day = PostgresDate(year: 2024, month: 12, day: 31)
            let amount = Decimal(string: "123.4500")!
            let list: [String] = ["a", "b,c", "d\"e", "f\\g", "NULL", ""]
            let json = PostgresJSON(rawValue: #"{"k": [1, 2, "three"]}"#)
            let missing: Int? = nil
            let row = try c.query("""
                SELECT \(text)::text AS t, \(big)::int8 AS big, \(small)::int2 AS small, \(0.1)::float8 AS f,
                       \(Double.nan)::float8 AS fnan, \(-Double.infinity)::float8 AS finf, \(true)::bool AS b,
                       \(id)::uuid AS u, \(when)::timestamptz AS ts, \(day)::date AS d, \(amount)::numeric AS n,
                       \(list)::text[] AS arr, \(json)::jsonb AS j, \(missing)::int4 AS missing
                """).singleRow()
            #expect(try row.decode("t", as: String.self) == text)
            #expect(try row.decode("big", as: Int64.self) == big)
            #expect(try row.decode("small", as: Int.self) == -12)
            #expect(try row.decode("f", as: Double.self) == 0.1)
            #expect(try row.decode("fnan", as: Double.self).isNaN)
            #expect(try row.decode("finf", as: Double.self) == -.infinity)
            #expect(try row.decode("b", as: Bool.self))
            #expect(try row.decode("u", as: UUID.self) == id)
            #expect(abs(try row.decode("ts", as: Date.self).timeIntervalSince(when)) < 0.000_001)
            #expect(try row.decode("d", as: PostgresDate.self) == day)
            #expect(try row.decode("n", as: Decimal.self) == amount)
            #expect(try row.decode("arr", as: [String?].self) == list)
            #expect(try row.decode("j", as: PostgresJSON.self).decode([String: [AnyJSON]].self)["k"]?.count == 3)
            #expect(try row.decode("missing", as: Int?.self) == nil)
        }
    }

    @Test("values with quotes cannot inject SQL", arguments: [
        "Robert'); DROP TABLE victims; --",
        "' OR '1'='1",
        "\\'; DELETE FROM victims; --",
        "$1; TRUNCATE victims",
        "$$; DROP TABLE victims; $$",
    ])
    func noInjection(evil: String) throws {
        try TestCluster.withDatabase(prefix: "params_inject") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE victims (id serial PRIMARY KEY, name text NOT NULL)")
            try c.execute("INSERT INTO victims (name) VALUES ('bystander')")
            #expect(try c.execute("INSERT INTO victims (name) VALUES (\(evil))") == 1)
            #expect(try c.query("SELECT count(*) FROM victims WHERE name = \(evil)").scalar(Int.self) == 1)
            #expect(try c.query("SELECT count(*) FROM victims WHERE name = \("' OR '1'='1 ")").scalar(Int.self) == 0)
            #expect(try c.query("SELECT count(*) FROM victims").scalar(Int.self) == 2, "nothing was deleted or dropped")
            #expect(try c.query("SELECT name FROM victims WHERE id = 2").scalar(String.self) == evil, "stored verbatim")
        }
    }

    @Test("PostgresIdentifier.quote doubles embedded quotes, and such names work on the server")
    func identifiers() throws {
        #expect(PostgresIdentifier.quote("games") == #""games""#)
        #expect(PostgresIdentifier.quote(#"we"ird"#) == #""we""ird""#)
        #expect(PostgresIdentifier.quote(#""""#) == #""""""""#)
        #expect(PostgresIdentifier.literal("it's") == "'it''s'")
        #expect(PostgresIdentifier.literal(#"a\b'c"#) == #"E'a\\b''c'"#)

        try TestCluster.withDatabase(prefix: "params_ident") { db in
            let c = try db.connect()
            let table = #"team "stats"; DROP TABLE x --"#
            let column = #"Yards "gained""#
            try c.execute("CREATE TABLE \(identifier: table) (\(identifier: column) int, \"plain\" text)")
            try c.execute("INSERT INTO \(identifier: table) (\(identifier: column), plain) VALUES (\(120), \("x"))")
            #expect(try c.query("SELECT \(identifier: column) AS v FROM \(identifier: table)").scalar(Int.self) == 120)
            #expect(try c.query("SELECT relname FROM pg_class WHERE relname = \(table)").scalar(String.self) == table)
            let attname = try c.query("""
                SELECT attname FROM pg_attribute WHERE attrelid = \(PostgresIdentifier.quote(table))::regclass AND attnum = 1
                """).scalar(String.self)
            #expect(attname == column)
            #expect(try c.query("SELECT \(unsafeRaw: PostgresIdentifier.literal(#"a\b'c"#)) AS v").scalar(String.self) == #"a\b'c"#)
        }
    }

    @Test("server errors carry SQLSTATE, table, constraint and position")
    func serverErrors() throws {
        try TestCluster.withDatabase(prefix: "params_err") { db in
            let c = try db.connect()
            try c.execute("CREATE TABLE teams (code text CONSTRAINT teams_pk PRIMARY KEY)")
            try c.execute("INSERT INTO teams VALUES (\("CHI"))")
            let dup = #expect(throws: PostgresError.self) { try c.execute("INSERT INTO teams VALUES (\("CHI"))") }
            #expect(dup?.sqlState == SQLState.uniqueViolation)
            #expect(dup?.isClass("23") == true)
            #expect(dup?.kind == .server)
            #expect(dup?.severity == "ERROR")
            #expect(dup?.tableName == "teams")
            #expect(dup?.constraintName == "teams_pk")
            #expect(dup?.detail?.contains("(code)=(CHI)") == true)
            let text = try #require(dup).description
            #expect(text.contains("SQLSTATE 23505"))
            #expect(text.contains("constraint teams_pk"))
            #expect(text.contains("statement: INSERT INTO teams VALUES ($1)"))

            let undefined = #expect(throws: PostgresError.self) { try c.query("SELECT * FROM  missing_table") }
            #expect(undefined?.sqlState == SQLState.undefinedTable)
            #expect(undefined?.position == 16)
            #expect(c.isAlive, "a server error leaves the connection usable")
            #expect(try c.query("SELECT 1").scalar(Int.self) == 1)
        }
    }
}

/// Any JSON value, for checking decoded shapes.
enum AnyJSON: Decodable {
    case number(Double), string(String), other
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let n = try? container.decode(Double.self) { self = .number(n) }
        else if let s = try? container.decode(String.self) { self = .string(s) }
        else { self = .other }
    }
}
