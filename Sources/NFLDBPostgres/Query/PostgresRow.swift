import CLibPQ
import Foundation

/// A result column: its name and type OID.
public struct PostgresColumn: Sendable, Hashable {
    public let name: String
    public let typeOID: UInt32
}

/// Well-known type OIDs (from `pg_type.dat`).
public enum PostgresTypeOID {
    public static let bool: UInt32 = 16
    public static let bytea: UInt32 = 17
    public static let name: UInt32 = 19
    public static let int8: UInt32 = 20
    public static let int2: UInt32 = 21
    public static let int4: UInt32 = 23
    public static let text: UInt32 = 25
    public static let oid: UInt32 = 26
    public static let json: UInt32 = 114
    public static let float4: UInt32 = 700
    public static let float8: UInt32 = 701
    public static let bpchar: UInt32 = 1042
    public static let varchar: UInt32 = 1043
    public static let date: UInt32 = 1082
    public static let time: UInt32 = 1083
    public static let timestamp: UInt32 = 1114
    public static let timestamptz: UInt32 = 1184
    public static let interval: UInt32 = 1186
    public static let numeric: UInt32 = 1700
    public static let uuid: UInt32 = 2950
    public static let jsonb: UInt32 = 3802
    public static let textArray: UInt32 = 1009
    public static let nameArray: UInt32 = 1003

    static let integers: Set<UInt32> = [int2, int4, int8, oid]
    static let floats: Set<UInt32> = [float4, float8, numeric]
}

/// One row of a result, copied out of libpq's `PGresult` (text format).
public struct PostgresRow: Sendable {
    public let columns: [PostgresColumn]
    public let values: [String?]

    public init(columns: [PostgresColumn], values: [String?]) {
        self.columns = columns
        self.values = values
    }

    /// The index of a column by name; the first match wins, as in libpq's `PQfnumber`.
    public func index(of name: String) -> Int? { columns.firstIndex { $0.name == name } }

    /// Raw text of a column, nil for NULL.
    public subscript(_ name: String) -> String? {
        guard let i = index(of: name) else { return nil }
        return values[i]
    }

    /// Decodes a column by name. Decode `T?` to accept NULL; decoding NULL into `T` throws.
    public func decode<T: PostgresDecodable>(_ name: String, as type: T.Type = T.self) throws -> T {
        guard let i = index(of: name) else {
            throw PostgresError(
                kind: .decoding,
                message: "result has no column \"\(name)\" (columns: \(columns.map(\.name).joined(separator: ", ")))")
        }
        return try decode(i, as: type)
    }

    /// Decodes a column by position.
    public func decode<T: PostgresDecodable>(_ index: Int, as type: T.Type = T.self) throws -> T {
        guard columns.indices.contains(index) else {
            throw PostgresError(kind: .decoding, message: "result has \(columns.count) columns; column \(index) does not exist")
        }
        let column = columns[index]
        guard let text = values[index] else {
            if let null = T.postgresNull { return null }
            throw PostgresError(kind: .decoding, message: "column \"\(column.name)\" is NULL; decode it as \(T.self)? to accept NULL")
        }
        do {
            return try T(postgresText: text, typeOID: column.typeOID)
        } catch let problem as PostgresDecodingProblem {
            throw PostgresError(
                kind: .decoding,
                message: "column \"\(column.name)\" (type oid \(column.typeOID)) cannot be decoded as \(T.self): \(problem.reason)")
        }
    }
}

/// The outcome of one statement.
public struct PostgresResult: Sendable {
    public let columns: [PostgresColumn]
    public let rows: [PostgresRow]
    /// The command tag, e.g. `INSERT 0 3`, `CREATE TABLE`.
    public let commandTag: String
    /// Rows affected (`PQcmdTuples`), when the command reports it.
    public let affectedRows: Int?

    /// Exactly one row, or an error that says how many there were.
    public func singleRow(_ what: @autoclosure () -> String = "query") throws -> PostgresRow {
        guard rows.count == 1 else {
            throw PostgresError(kind: .unexpectedShape, message: "\(what()) returned \(rows.count) rows; expected exactly one")
        }
        return rows[0]
    }

    /// The first column of the single row.
    public func scalar<T: PostgresDecodable>(_ type: T.Type = T.self, _ what: @autoclosure () -> String = "query") throws -> T {
        try singleRow(what()).decode(0, as: type)
    }

    static func copy(from result: OpaquePointer) -> PostgresResult {
        let columnCount = Int(PQnfields(result))
        let rowCount = Int(PQntuples(result))
        var columns: [PostgresColumn] = []
        columns.reserveCapacity(columnCount)
        for c in 0..<columnCount {
            columns.append(PostgresColumn(name: String(cString: PQfname(result, Int32(c))), typeOID: PQftype(result, Int32(c))))
        }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(rowCount)
        for r in 0..<rowCount {
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for c in 0..<columnCount {
                if PQgetisnull(result, Int32(r), Int32(c)) == 1 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(result, Int32(r), Int32(c))))
                }
            }
            rows.append(PostgresRow(columns: columns, values: values))
        }
        let tag = PQcmdStatus(result).map { String(cString: $0) } ?? ""
        return PostgresResult(columns: columns, rows: rows, commandTag: tag, affectedRows: affectedRows(of: result))
    }

    /// Rows the command reports (`PQcmdTuples`: `INSERT 0 5`, `UPDATE 3`, `COPY 100`), if any.
    static func affectedRows(of result: OpaquePointer) -> Int? {
        PQcmdTuples(result).map { String(cString: $0) }.flatMap { Int($0) }
    }
}
