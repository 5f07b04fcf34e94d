import Foundation
import NFLDBCore
import NFLDBPgBackRest
import NFLDBPostgres

extension ConfigRenderer {
    /// A renderer for the server `connection` is on: pg1-path, port, socket directory and user are
    /// read from it (`data_directory`, `port`, the first `unix_socket_directories` entry, `current_user`).
    public static func forServer(
        _ connection: PostgresConnection, stanza: String, configPath: String, repoPath: String
    ) throws -> ConfigRenderer {
        func setting(_ name: String) throws -> String { try connection.query("SELECT current_setting(\(name))").scalar(String.self) }
        let socket = try setting("unix_socket_directories").split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) }
            ?? "/var/run/postgresql"
        return ConfigRenderer(
            stanza: stanza, configPath: configPath, repoPath: repoPath,
            pgPath: try setting("data_directory"), pgPort: Int(try setting("port")) ?? 5432, pgSocket: socket,
            pgUser: try connection.query("SELECT current_user::text").scalar(String.self))
    }
}
