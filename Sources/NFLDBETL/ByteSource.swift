import Foundation
#if canImport(Glibc)
import Glibc
#endif
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

/// A source that can be read again from its start (a load that must start over: see
/// `GamesLoader`'s direct load into an empty table).
public protocol ReplayableSource: ByteSource {
    /// False when reading again would not give the same bytes (a FIFO or pipe given as a path).
    var canReplay: Bool { get }
    func replay() throws -> any ByteSource
}

extension ReplayableSource {
    public var canReplay: Bool { true }
}

/// A local file, read in 1 MiB chunks.
public final class FileSource: ReplayableSource {
    public let name: String
    private let path: String
    private let handle: FileHandle
    public var validators: HTTPValidators { HTTPValidators() }

    public init(path: String) throws {
        self.path = path
        // A path never carries a password, but `u:pw@host/…` given as --source (a mistyped URL) would
        // show one in every message and in nfl.etl_runs.source.
        name = URLRedaction.maskUserInfo(path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ETLInputError(source: name, "no such file", hint: "Give --source an existing CSV file or an http(s) URL.", exitStatus: .usage)
        }
        guard !isDirectory.boolValue else {
            throw ETLInputError(source: name, "is a directory, not a file", hint: "Give --source the CSV file itself (e.g. \(name)/games.csv) or an http(s) URL.", exitStatus: .usage)
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ETLInputError(source: name, "cannot open the file for reading", hint: "Check its permissions.")
        }
        self.handle = handle
    }

    deinit { try? handle.close() }

    /// Only a regular file can be read again from its start; a FIFO or pipe streams once.
    public var canReplay: Bool {
        var info = stat()
        return fstat(handle.fileDescriptor, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    /// The same open file from its start (not the path again: a file renamed over the path meanwhile
    /// — how download jobs publish — must not become this run's input halfway through).
    public func replay() throws -> any ByteSource {
        let fd = dup(handle.fileDescriptor)
        guard fd >= 0, lseek(fd, 0, SEEK_SET) == 0 else {
            if fd >= 0 { Glibc.close(fd) }
            throw ETLInputError(source: name, "cannot read the file again from its start: \(String(cString: strerror(errno)))", hint: "Load it again.")
        }
        return FileSource(name: name, path: path, handle: FileHandle(fileDescriptor: fd, closeOnDealloc: true))
    }

    private init(name: String, path: String, handle: FileHandle) {
        self.name = name
        self.path = path
        self.handle = handle
    }

    /// Up to 1 MiB: whatever one read(2) returns, so a pipe or FIFO is parsed as its bytes arrive
    /// (a regular file gives full chunks).
    public func read() throws -> Data? {
        var data = Data(count: 1 << 20)
        let fd = handle.fileDescriptor
        var n: Int
        repeat {
            n = data.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        } while n < 0 && errno == EINTR
        guard n >= 0 else {
            throw ETLInputError(source: name, "read failed: \(String(cString: strerror(errno)))", hint: "Check the file and the disk.")
        }
        guard n > 0 else { return nil }
        data.count = n
        return data
    }
}

/// An in-memory input (tests, stdin).
public final class DataSource: ReplayableSource {
    public let name: String
    private let original: Data
    private var data: Data?
    public var validators: HTTPValidators { HTTPValidators() }
    public init(_ data: Data, name: String = "memory") {
        self.original = data
        self.data = data
        self.name = name
    }
    public func replay() throws -> any ByteSource { DataSource(original, name: name) }
    public func read() throws -> Data? {
        defer { data = nil }
        return data
    }
}
