import Foundation
import NFLDBCore

/// Input bytes of a run, pulled chunk by chunk so the CSV is parsed as it arrives.
public protocol ByteSource: AnyObject {
    /// The next chunk, or nil at the end of the input.
    func read() throws -> Data?
    /// Where the bytes come from, for messages and `nfl.etl_runs.source` (never with credentials).
    var name: String { get }
    /// HTTP validators of this response, to remember for the next conditional request.
    var validators: HTTPValidators { get }
}

/// `ETag` / `Last-Modified` of a response.
public struct HTTPValidators: Sendable, Equatable, Codable {
    public var etag: String?
    public var lastModified: String?
    public init(etag: String? = nil, lastModified: String? = nil) {
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// A local file, read in 1 MiB chunks.
public final class FileSource: ByteSource {
    public let name: String
    private let handle: FileHandle
    public var validators: HTTPValidators { HTTPValidators() }

    public init(path: String) throws {
        name = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ETLInputError(source: path, "no such file", hint: "Give --source an existing CSV file or an http(s) URL.", exitStatus: .usage)
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ETLInputError(source: path, "cannot open the file for reading", hint: "Check its permissions.")
        }
        self.handle = handle
    }

    deinit { try? handle.close() }

    public func read() throws -> Data? {
        do {
            guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
            return data
        } catch {
            throw ETLInputError(source: name, "read failed: \(error.localizedDescription)", hint: "Check the file and the disk.")
        }
    }
}

/// An in-memory input (tests, stdin).
public final class DataSource: ByteSource {
    public let name: String
    private var data: Data?
    public var validators: HTTPValidators { HTTPValidators() }
    public init(_ data: Data, name: String = "memory") {
        self.data = data
        self.name = name
    }
    public func read() throws -> Data? {
        defer { data = nil }
        return data
    }
}
