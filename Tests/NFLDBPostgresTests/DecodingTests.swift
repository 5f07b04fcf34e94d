import Foundation
import NFLDBCore
import NFLDBPostgres
import NFLDBTestSupport
import Testing

@Suite("Decoding every supported type from a real server")
struct DecodingTests {
    /// Microsecond-level equality for dates that went through text.
    static func close(_ a: Date, _ b: Date) -> Bool { abs(a.timeIntervalSince1970 - b.timeIntervalSince1970) < 0.000_001 }

    static func utc(_ y: Int, _ mo: Int, _ d: Int, _ h: Int = 0, _ mi: Int = 0, _ s: Int = 0, fraction: Double = 0) -> Date {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let base = calendar.date(from: DateComponents(year: y, month: mo, day: d, hour: h, minute: mi, second: s))!
        return base.addingTimeInterval(fraction)
    }

    @Test("text, integers, bool and uuid")
    func scalars() throws {
        try TestCluster.withDatabase(prefix: "dec_scalars") { db in
            let c = try db.connect()
            let row = try c.query("""
                SELECT 'héllo wörld'::text AS t, ''::text AS empty, 'x'::varchar(3) AS vc, 'ab'::char(4) AS bp,
                       (-32768)::int2 AS i2, 2147483647::int4 AS i4, (-9223372036854775808)::int8 AS i8min,
                       9223372036854775807::int8 AS i8max, true AS yes, false AS no,
                       'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid AS u
                """).singleRow()
            #expect(try row.decode("t", as: String.self) == "héllo wörld")
            #expect(try row.decode("empty", as: String.self) == "")
            #expect(try row.decode("vc", as: String.self) == "x")
            #expect(try row.decode("bp", as: String.self) == "ab  ")
            #expect(try row.decode("i2", as: Int.self) == -32768)
            #expect(try row.decode("i2", as: Int32.self) == -32768)
            #expect(try row.decode("i4", as: Int32.self) == Int32.max)
            #expect(try row.decode("i4", as: Int.self) == 2_147_483_647)
            #expect(try row.decode("i8min", as: Int64.self) == Int64.min)
            #expect(try row.decode("i8max", as: Int64.self) == Int64.max)
            #expect(try row.decode("i8max", as: UInt64.self) == UInt64(Int64.max))
            #expect(try row.decode("yes", as: Bool.self) == true)
            #expect(try row.decode("no", as: Bool.self) == false)
            #expect(try row.decode("u", as: UUID.self) == UUID(uuidString: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))
            #expect(row.columns.map(\.typeOID) == [
                PostgresTypeOID.text, PostgresTypeOID.text, PostgresTypeOID.varchar, PostgresTypeOID.bpchar,
                PostgresTypeOID.int2, PostgresTypeOID.int4, PostgresTypeOID.int8, PostgresTypeOID.int8,
                PostgresTypeOID.bool, PostgresTypeOID.bool, PostgresTypeOID.uuid,
            ])
            // by position as well as by name
            #expect(try row.decode(0, as: String.self) == "héllo wörld")
        }
    }

    @Test("numeric as Double and exactly as Decimal; float8 including NaN and ±Infinity")
    func numbers() throws {
        try TestCluster.withDatabase(prefix: "dec_numbers") { db in
            let c = try db.connect()
            let row = try c.query("""
                SELECT 12345.678901234567890123::numeric AS n, (-0.000001)::numeric AS small, 'NaN'::numeric AS nnan,
                       1.5::float8 AS f, 0.1::float8 AS tenth, 'NaN'::float8 AS fnan, 'Infinity'::float8 AS finf,
                       '-Infinity'::float8 AS fninf, 3.25::float4 AS f4, 1e300::float8 AS huge
                """).singleRow()
            #expect(try row.decode("n", as: Double.self) == 12345.678901234567890123)
            #expect(try row.decode("n", as: Decimal.self) == Decimal(string: "12345.678901234567890123"))
            #expect(try row.decode("n", as: String.self) == "12345.678901234567890123")
            #expect(try row.decode("small", as: Decimal.self) == Decimal(string: "-0.000001"))
            #expect(try row.decode("nnan", as: Double.self).isNaN)
            #expect(try row.decode("f", as: Double.self) == 1.5)
            #expect(try row.decode("tenth", as: Double.self) == 0.1)
            #expect(try row.decode("fnan", as: Double.self).isNaN)
            #expect(try row.decode("finf", as: Double.self) == .infinity)
            #expect(try row.decode("fninf", as: Double.self) == -.infinity)
            #expect(try row.decode("f4", as: Double.self) == 3.25)
            #expect(try row.decode("huge", as: Double.self) == 1e300)
        }
    }

    @Test("timestamptz with a non-UTC offset and fractional seconds, timestamp, and date")
    func timestamps() throws {
        try TestCluster.withDatabase(prefix: "dec_time") { db in
            let c = try db.connect()
            try c.execute("SET TimeZone = 'Asia/Kolkata'")
            let row = try c.query("""
                SELECT '2024-09-05 20:20:00.123456+05:30'::timestamptz AS tz,
                       '2024-09-05 20:20:00.5'::timestamp AS ts,
                       '2024-02-29'::date AS d,
                       '2024-09-05 10:00:00-03:30'::timestamptz AS tz2
                """).singleRow()
            #expect(row["tz"] == "2024-09-05 20:20:00.123456+05:30", "the server sent a non-UTC offset")
            let tz = try row.decode("tz", as: Date.self)
            #expect(Self.close(tz, Self.utc(2024, 9, 5, 14, 50, 0, fraction: 0.123456)))
            #expect(Self.close(try row.decode("tz2", as: Date.self), Self.utc(2024, 9, 5, 13, 30)))
            #expect(Self.close(try row.decode("ts", as: Date.self), Self.utc(2024, 9, 5, 20, 20, 0, fraction: 0.5)))
            #expect(try row.decode("d", as: PostgresDate.self) == PostgresDate(year: 2024, month: 2, day: 29))
            #expect(try row.decode("d", as: PostgresDate.self).description == "2024-02-29")
            #expect(try row.decode("d", as: Date.self) == Self.utc(2024, 2, 29))

            // An offset with seconds (local mean time before time zones were standardised).
            try c.execute("SET TimeZone = 'Europe/Amsterdam'")
            let lmt = try c.query("SELECT '1900-01-01 00:00:00+00'::timestamptz AS t").singleRow()
            #expect(lmt["t"] == "1900-01-01 00:19:32+00:19:32")
            #expect(try lmt.decode("t", as: Date.self) == Self.utc(1900, 1, 1))
        }
    }

    @Test("jsonb as raw text via PostgresJSON, decodable with JSONDecoder")
    func json() throws {
        struct Payload: Decodable, Equatable { let a: [Int]; let b: String? }
        try TestCluster.withDatabase(prefix: "dec_json") { db in
            let c = try db.connect()
            let row = try c.query(#"SELECT '{"b": null, "a": [1, 2]}'::jsonb AS j, '[1,"x"]'::json AS plain"#).singleRow()
            let value = try row.decode("j", as: PostgresJSON.self)
            #expect(value.rawValue == #"{"a": [1, 2], "b": null}"#, "jsonb normalises key order and spacing")
            #expect(try value.decode(Payload.self) == Payload(a: [1, 2], b: nil))
            #expect(try row.decode("plain", as: PostgresJSON.self).rawValue == #"[1,"x"]"#, "json keeps the text as written")
            #expect(row.columns.map(\.typeOID) == [PostgresTypeOID.jsonb, PostgresTypeOID.json])
        }
    }

    @Test("text[] with NULL, quoted, comma, backslash and empty elements; int[]; empty arrays")
    func arrays() throws {
        try TestCluster.withDatabase(prefix: "dec_arrays") { db in
            let c = try db.connect()
            let row = try c.query(#"""
                SELECT ARRAY['plain', NULL, 'with "quotes"', 'a,b', 'back\slash', 'NULL', '', 'sp ace', '{braces}']::text[] AS arr,
                       ARRAY[1, -2, 3]::int[] AS ints, '{}'::text[] AS none, ARRAY['x', NULL]::text[] AS withnull
                """#).singleRow()
            #expect(try row.decode("arr", as: [String?].self) == [
                "plain", nil, "with \"quotes\"", "a,b", "back\\slash", "NULL", "", "sp ace", "{braces}",
            ])
            #expect(try row.decode("ints", as: [Int].self) == [1, -2, 3])
            #expect(try row.decode("none", as: [String].self) == [])
            let error = #expect(throws: PostgresError.self) { try row.decode("withnull", as: [String].self) }
            #expect(error?.kind == .decoding)
            #expect(error?.message.contains("\"withnull\"") == true)
            #expect(error?.message.contains("array contains NULL") == true)
        }
    }

    @Test("NULL decodes into Optional for every type")
    func nullsIntoOptionals() throws {
        try TestCluster.withDatabase(prefix: "dec_nulls") { db in
            let c = try db.connect()
            let row = try c.query("""
                SELECT NULL::text AS t, NULL::int2 AS i2, NULL::int4 AS i4, NULL::int8 AS i8, NULL::numeric AS n,
                       NULL::float8 AS f, NULL::bool AS b, NULL::timestamptz AS tz, NULL::timestamp AS ts,
                       NULL::date AS d, NULL::jsonb AS j, NULL::uuid AS u, NULL::text[] AS arr
                """).singleRow()
            #expect(try row.decode("t", as: String?.self) == nil)
            #expect(try row.decode("i2", as: Int?.self) == nil)
            #expect(try row.decode("i4", as: Int32?.self) == nil)
            #expect(try row.decode("i8", as: Int64?.self) == nil)
            #expect(try row.decode("n", as: Decimal?.self) == nil)
            #expect(try row.decode("n", as: Double?.self) == nil)
            #expect(try row.decode("f", as: Double?.self) == nil)
            #expect(try row.decode("b", as: Bool?.self) == nil)
            #expect(try row.decode("tz", as: Date?.self) == nil)
            #expect(try row.decode("ts", as: Date?.self) == nil)
            #expect(try row.decode("d", as: PostgresDate?.self) == nil)
            #expect(try row.decode("j", as: PostgresJSON?.self) == nil)
            #expect(try row.decode("u", as: UUID?.self) == nil)
            #expect(try row.decode("arr", as: [String]?.self) == nil)
            #expect(row["t"] == nil)
            // and a non-NULL value still decodes through Optional
            #expect(try c.query("SELECT 7::int4 AS x").singleRow().decode("x", as: Int?.self) == 7)
        }
    }

    @Test("NULL into a non-optional throws a decoding error naming the column")
    func nullIntoNonOptional() throws {
        try TestCluster.withDatabase(prefix: "dec_nullerr") { db in
            let c = try db.connect()
            let row = try c.query("SELECT 1 AS present, NULL::int8 AS kickoff_epoch").singleRow()
            let error = #expect(throws: PostgresError.self) { try row.decode("kickoff_epoch", as: Int64.self) }
            #expect(error?.kind == .decoding)
            #expect(error?.message.contains("column \"kickoff_epoch\" is NULL") == true)
            #expect(error?.message.contains("Int64?") == true, "the message says how to accept NULL")
            #expect(throws: PostgresError.self) { try row.decode(1, as: String.self) }
        }
    }

    @Test("wrong types, unknown columns and result shapes are decoding errors naming the column")
    func mismatches() throws {
        try TestCluster.withDatabase(prefix: "dec_mismatch") { db in
            let c = try db.connect()
            let row = try c.query("SELECT 'abc'::text AS team, 40000::int4 AS big, 'maybe'::text AS flag").singleRow()
            let notInt = #expect(throws: PostgresError.self) { try row.decode("team", as: Int.self) }
            #expect(notInt?.kind == .decoding)
            #expect(notInt?.message.contains("column \"team\"") == true)
            #expect(notInt?.message.contains("'abc' is not an integer") == true)
            #expect(throws: PostgresError.self) { try row.decode("flag", as: Bool.self) }
            #expect(throws: PostgresError.self) { try row.decode("team", as: UUID.self) }
            #expect(throws: PostgresError.self) { try row.decode("team", as: Date.self) }
            let missing = #expect(throws: PostgresError.self) { try row.decode("nope", as: String.self) }
            #expect(missing?.message.contains("no column \"nope\" (columns: team, big, flag)") == true)
            #expect(throws: PostgresError.self) { try row.decode(9, as: String.self) }

            let two = try c.query("SELECT generate_series(1, 2) AS n")
            #expect(two.rows.count == 2)
            let shape = #expect(throws: PostgresError.self) { try two.singleRow("series") }
            #expect(shape?.kind == .unexpectedShape)
            #expect(shape?.message == "series returned 2 rows; expected exactly one")
        }
    }

    @Test("PostgresTimestamp parses the ISO forms and formats UTC with microseconds")
    func timestampParser() {
        #expect(PostgresTimestamp.parse("2024-09-05T20:20:00Z") == Self.utc(2024, 9, 5, 20, 20))
        #expect(PostgresTimestamp.parse("2024-09-05 20:20:00-03:30:15") == Self.utc(2024, 9, 5, 23, 50, 15))
        #expect(PostgresTimestamp.parse("2024-09-05") == Self.utc(2024, 9, 5))
        #expect(PostgresTimestamp.parse("0044-03-15 12:00:00+00 BC") == nil)
        #expect(PostgresTimestamp.parse("not a date") == nil)
        #expect(PostgresTimestamp.parse("2024-09-05 20:20") == nil)
        let date = Self.utc(2024, 9, 5, 20, 20, 1, fraction: 0.000_25)
        #expect(PostgresTimestamp.format(date) == "2024-09-05 20:20:01.000250+00:00")
        #expect(Self.close(PostgresTimestamp.parse(PostgresTimestamp.format(date))!, date))
    }
}
