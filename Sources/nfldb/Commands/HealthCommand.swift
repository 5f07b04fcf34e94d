import ArgumentParser
import Foundation

/// `nfldb health`: placeholder until the health capability lands.
struct HealthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "health", abstract: "Health probes and alerting (not built yet).")

    func run() throws {
        throw ValidationError("`nfldb health` is not built yet")
    }
}
