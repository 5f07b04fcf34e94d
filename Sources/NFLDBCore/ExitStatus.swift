import Foundation
/// The process exit statuses nfldb uses, in one table (documented in the README).
///
/// | status | meaning |
/// |---|---|
/// | 0 | success (also when there was nothing to do) |
/// | 1 | the command failed (database error, unreachable server, failed check) |
/// | 2 | usage or configuration error (bad flag, bad `nfldb.yaml`, bad migration file names) |
/// | 3 | `migrate status --exit-code`: migrations are pending |
/// | 4 | `migrate status --exit-code`: drift or a dirty version |
///
/// A monitoring command may use the monitoring-plugin convention instead (0 OK, 1 WARNING, 2 CRITICAL,
/// 3 UNKNOWN); it documents that itself.
///
/// Thrown by itself, an `ExitStatus` ends a command that has already printed its result with that
/// status and no further message (`migrate status --exit-code`, a failed check whose report is the output).
public struct ExitStatus: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: Int32

    public init(_ code: Int32) { self.code = code }

    public static let success = ExitStatus(0)
    public static let failure = ExitStatus(1)
    public static let usage = ExitStatus(2)
    public static let pending = ExitStatus(3)
    public static let drift = ExitStatus(4)

    public var description: String { String(code) }
}
