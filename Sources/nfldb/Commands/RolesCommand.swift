import ArgumentParser
import Foundation

/// `nfldb roles`: placeholder until the roles capability lands.
struct RolesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "roles", abstract: "Declarative roles and grants (not built yet).")

    func run() throws {
        throw ValidationError("`nfldb roles` is not built yet")
    }
}
