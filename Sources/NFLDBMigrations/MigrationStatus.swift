import Foundation
import NFLDBPostgres

/// One line of `nfldb migrate status`.
public struct MigrationStatusEntry: Sendable, Codable, Hashable {
    public enum State: String, Sendable, Codable {
        case applied, pending, running, failed, baseline
    }

    public let version: Int64
    public let name: String
    public let state: State
    public let appliedAt: Date?
    /// The applied file's checksum no longer matches the file.
    public let drift: Bool
    /// Pending, but older than the newest applied version.
    public let outOfOrder: Bool
    /// Applied, but its files are gone from the directory (down still works from the stored SQL).
    public let fileMissing: Bool
    /// The down file differs from the down SQL stored when it was applied.
    public let downChanged: Bool
    /// For dirty rows: progress and the failing statement.
    public let detail: String?
}

/// What `nfldb migrate status` reports: files and history side by side.
public struct MigrationStatus: Sendable, Codable {
    public let entries: [MigrationStatusEntry]
    public let currentVersion: Int64?
    public let invalidIndexes: [String]

    public var pending: [MigrationStatusEntry] { entries.filter { $0.state == .pending } }
    public var drifted: [MigrationStatusEntry] { entries.filter(\.drift) }
    public var dirty: [MigrationStatusEntry] { entries.filter { $0.state == .running || $0.state == .failed } }

    /// Builds the status from the files and the ledger (pure; unit-testable).
    public static func compute(files: [Migration], rows: [LedgerRow], invalidIndexes: [String] = []) -> MigrationStatus {
        let fileByVersion = Dictionary(uniqueKeysWithValues: files.map { ($0.version, $0) })
        let rowByVersion = Dictionary(uniqueKeysWithValues: rows.map { ($0.version, $0) })
        let maxApplied = rows.map(\.version).max()
        var entries: [MigrationStatusEntry] = []
        for version in Set(fileByVersion.keys).union(rowByVersion.keys).sorted() {
            let file = fileByVersion[version]
            if let row = rowByVersion[version] {
                let state: MigrationStatusEntry.State
                switch row.state {
                case .applied: state = row.isBaseline ? .baseline : .applied
                case .running: state = .running
                case .failed: state = .failed
                }
                var detail: String?
                if row.isDirty {
                    detail = "statements done \(row.statementsDone ?? 0)/\(row.statementsTotal ?? 0)"
                    if let line = row.failedStatementLine { detail! += "; failed at \(row.upPath ?? row.id):\(line)" }
                    if let error = row.error { detail! += ": \(error)" }
                }
                entries.append(MigrationStatusEntry(
                    version: version, name: row.name, state: state, appliedAt: row.appliedAt,
                    drift: file.map { $0.upChecksum != row.upChecksum } ?? false, outOfOrder: false, fileMissing: file == nil,
                    downChanged: file.map { f in row.downChecksum.map { $0 != f.downChecksum } ?? false } ?? false, detail: detail))
            } else if let file {
                entries.append(MigrationStatusEntry(
                    version: version, name: file.name, state: .pending, appliedAt: nil, drift: false,
                    outOfOrder: maxApplied.map { version < $0 } ?? false, fileMissing: false, downChanged: false, detail: nil))
            }
        }
        return MigrationStatus(entries: entries, currentVersion: rows.filter { $0.state == .applied }.map(\.version).max(), invalidIndexes: invalidIndexes)
    }
}

/// One event of `nfldb migrate history`.
public struct MigrationEvent: Sendable, Codable {
    public let id: Int64
    public let at: Date
    public let version: Int64?
    public let name: String?
    public let event: String
    public let actor: String
    public let clientHost: String?
    public let correlationID: String?
    public let detail: String?
}
