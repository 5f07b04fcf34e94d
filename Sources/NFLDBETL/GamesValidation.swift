import Foundation
import NFLDBCore

/// `nfldb etl validate games`: the contract over a source without touching a database.
public enum GamesValidation {
    /// Validates every row; the result's status is `valid` or `invalid` (any error-severity failure).
    public static func validate(_ source: any ByteSource, now: Date = Date(), progress: ((Int) -> Void)? = nil) throws -> LoadResult {
        let started = ContinuousClock.now
        let pipeline = ValidationPipeline(contract: GamesContract.contract(now: now), sourceName: source.name)
        pipeline.progress = progress
        try pipeline.run(source, encoding: .none) { _ in }
        // Duplicates: every member of a group is invalid (the first occurrence too).
        var firsts: [(row: Int, line: Int, key: String, raw: String)] = []
        for (key, row) in pipeline.validator.duplicatedKeys { firsts.append((row, 0, key, "")) }
        if !firsts.isEmpty { pipeline.rejectFirstOccurrences(firsts) }
        // A header with no rows is not a valid games file (an upstream that lost its data).
        let empty = pipeline.metrics.rowCount == 0
        var result = LoadResult(status: pipeline.metrics.rejectedRows == 0 && !empty ? "valid" : (empty ? "invalid: no data rows" : "invalid"), source: source.name)
        result.checksum = pipeline.checksum
        result.bytes = pipeline.bytesRead
        result.rowsRead = pipeline.metrics.rowCount
        result.rejected = pipeline.metrics.rejectedRows
        result.invalidRatio = result.rowsRead == 0 ? 0 : Double(result.rejected) / Double(result.rowsRead)
        result.metrics = pipeline.metrics
        result.failures = pipeline.failures
        result.failureCount = pipeline.validator.failureCount
        result.durationMS = (ContinuousClock.now - started).inMilliseconds
        return result
    }
}
