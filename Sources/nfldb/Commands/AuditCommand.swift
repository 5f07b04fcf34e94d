import ArgumentParser
import Foundation

/// `nfldb audit`: placeholder until the audit capability lands.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "audit", abstract: "Audit triggers (not built yet).")

    func run() throws {
        throw ValidationError("`nfldb audit` is not built yet")
    }
}
