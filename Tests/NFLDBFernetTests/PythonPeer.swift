import Foundation
import NFLDBCore

/// Python `cryptography` as the interop peer, run as a subprocess: a JSON request in a file, a JSON
/// answer on stdout.
enum PythonPeer {
    static let script = #"""
    import json, sys
    from cryptography.fernet import Fernet, MultiFernet, InvalidToken
    req = json.load(open(sys.argv[1]))
    out = {}
    if req["op"] == "encrypt":
        f = MultiFernet([Fernet(k) for k in req["keys"]])
        out["tokens"] = [f.encrypt(v.encode()).decode() for v in req["values"]]
    elif req["op"] == "encrypt_at":
        f = Fernet(req["keys"][0])
        out["tokens"] = [f._encrypt_from_parts(v.encode(), req["now"], bytes(req["iv"])).decode() for v in req["values"]]
    elif req["op"] == "decrypt":
        f = MultiFernet([Fernet(k) for k in req["keys"]])
        res = []
        for t in req["tokens"]:
            try:
                if "now" in req:
                    res.append(f.decrypt_at_time(t.encode(), req["ttl"], req["now"]).decode())
                else:
                    res.append(f.decrypt(t.encode()).decode())
            except InvalidToken:
                res.append(None)
        out["values"] = res
    elif req["op"] == "keygen":
        out["key"] = Fernet.generate_key().decode()
    print(json.dumps(out))
    """#

    static func call(_ request: [String: Any]) throws -> [String: Any] {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nfldb-fernet-py-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let scriptPath = dir.appendingPathComponent("peer.py").path
        let requestPath = dir.appendingPathComponent("request.json").path
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        try JSONSerialization.data(withJSONObject: request).write(to: URL(fileURLWithPath: requestPath))
        let result = try ProcessRunner().run("python3", [scriptPath, requestPath], timeout: .seconds(60))
        guard result.succeeded else {
            throw PeerError(message: "python3 failed (\(result.status)): \(result.stderrTail())")
        }
        return try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8)) as? [String: Any] ?? [:]
    }

    struct PeerError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
