import Foundation
import NFLDBCore

/// `nfldb crypt encrypt|decrypt`: one value per line from a file descriptor to another.
///
/// A line is the bytes before `\n` (a final line without `\n` counts too). Decryption stops at the
/// first token no key opens, naming its line, so the output never silently misses a row.
public enum FernetStream {
    public enum Mode: Sendable { case encrypt, decrypt(ttl: Int64?) }

    public struct Summary: Sendable, Equatable {
        public var lines = 0
        /// Lines opened by each key, by position in the key list (decrypt only).
        public var byKey: [Int] = []
    }

    /// A line that could not be processed. Names the line and the reason, never the content.
    public struct LineError: NFLDBError, Sendable {
        public let line: Int
        public let reason: String
        public let keyCount: Int
        /// Why the token was refused (nil: a key opened it, but the value cannot be written as a line).
        public var cause: FernetError? = nil
        /// What to do, when neither a token's refusal nor a newline in a value is the problem.
        public var otherHint: String? = nil
        public var diagnostic: Diagnostic {
            Diagnostic(
                "line \(line): \(reason)",
                detail: "tried \(keyCount) key\(keyCount == 1 ? "" : "s"); lines before it were written",
                hint: hint)
        }
        /// What to do for this failure: only a signature mismatch can be a missing key.
        var hint: String {
            if let otherHint { return otherHint }
            switch cause {
            case .signatureMismatch:
                return "Add the key that encrypted it to --key-ref (comma-separated, any order after the newest); if every key is there, the token was altered."
            case .malformed:
                return "Check the input is one Fernet token per line (no header, no quoting, no blank lines)."
            case .expired:
                return "The key opened it, but it is older than --ttl: leave --ttl out or raise it to accept older tokens."
            case .fromTheFuture:
                return "The key opened it, but it was stamped more than 60 s ahead of this machine's clock: check the clocks (NTP) here and where it was encrypted."
            case .badPadding, .library:
                return "The token's HMAC matched, so this is a fault of the writer or of libcrypto here; report it with the line number."
            case nil:
                return "The value contains a line break, which one-value-per-line output cannot carry: decrypt it with a tool that returns whole values (Python cryptography), or keep such values base64-encoded."
            }
        }
        public var exitStatus: ExitStatus { .failure }
    }

    /// The longest line read (64 MiB): a longer one is refused, naming its line, instead of being
    /// held in memory whole (binary input piped in by mistake has no line breaks).
    public static let maxLineBytes = 64 << 20

    public static func run(
        _ mode: Mode, ring: KeyRing, input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO, maxLineBytes: Int = FernetStream.maxLineBytes
    ) throws -> Summary {
        let multi = try ring.multiFernet()
        var summary = Summary(byKey: Array(repeating: 0, count: ring.keys.count))
        var writer = BufferedWriter(fd: output)
        var pending: [UInt8] = []
        var scanned = 0  // leading bytes of `pending` known to hold no line break
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var eof = false
        while !eof {
            let n = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw OperatorError("reading standard input failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                eof = true
                if pending.isEmpty { break }
                pending.append(0x0A)
            } else {
                pending.append(contentsOf: chunk[0..<n])
            }
            // Search only the bytes not searched yet: a long line spanning many reads stays linear.
            var start = 0
            var from = scanned
            while let newline = pending[from...].firstIndex(of: 0x0A) {
                let line = pending[start..<newline]
                if line.count > maxLineBytes {
                    try? writer.flush()
                    throw overlong(line: summary.lines + 1, limit: maxLineBytes, keys: multi.fernets.count)
                }
                summary.lines += 1
                do {
                    try process(line, mode: mode, multi: multi, lineNumber: summary.lines, summary: &summary, writer: &writer)
                } catch {
                    try? writer.flush()
                    throw error
                }
                start = newline + 1
                from = start
            }
            pending.removeFirst(start)
            scanned = pending.count
            if pending.count > maxLineBytes {
                try? writer.flush()
                throw overlong(line: summary.lines + 1, limit: maxLineBytes, keys: multi.fernets.count)
            }
        }
        try writer.flush()
        return summary
    }

    /// A line longer than the limit (checked as soon as it is seen to be, with or without its newline).
    private static func overlong(line: Int, limit: Int, keys: Int) -> LineError {
        let shown = limit >= 1 << 20 && limit % (1 << 20) == 0 ? "\(limit >> 20) MiB" : "\(limit) bytes"
        return LineError(
            line: line, reason: "longer than \(shown) without a line break", keyCount: keys,
            otherHint: "The input must be one value (encrypt) or one Fernet token (decrypt) per line; check that the right file was given (binary data has no line breaks).")
    }

    /// Encrypts or decrypts one line straight into the output buffer (the buffer APIs: no String
    /// or array per value).
    private static func process(
        _ line: ArraySlice<UInt8>, mode: Mode, multi: MultiFernet, lineNumber: Int, summary: inout Summary, writer: inout BufferedWriter
    ) throws {
        switch mode {
        case .encrypt:
            let length = Fernet.tokenLength(plaintextCount: line.count)
            try line.withUnsafeBytes { plain in
                try writer.append(upTo: length) { out throws(FernetError) in try multi.primary.encrypt(plain, into: out) }
            }
        case .decrypt(let ttl):
            var token = line
            if token.last == 0x0D { token.removeLast() }
            do {
                try token.withUnsafeBytes { token in
                    try writer.append(upTo: Fernet.maxPlaintextLength(tokenLength: token.count)) { out in
                        let opened = try multi.decryptReportingKey(token, into: out, ttl: ttl)
                        if UnsafeRawBufferPointer(rebasing: out[0..<opened.count]).contains(0x0A) {
                            throw LineError(line: lineNumber, reason: "the value contains a newline, which one-value-per-line output cannot carry", keyCount: multi.fernets.count)
                        }
                        summary.byKey[opened.keyIndex] += 1
                        return opened.count
                    }
                }
            } catch let error as FernetError {
                throw LineError(line: lineNumber, reason: error.description, keyCount: multi.fernets.count, cause: error)
            }
        }
        try writer.write(CollectionOfOne(0x0A))
    }
}

/// Collects output and writes it in 64 KiB chunks.
struct BufferedWriter {
    let fd: Int32
    var buffer: [UInt8] = []

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(1 << 16)
    }

    mutating func write(_ bytes: some Sequence<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { try flush() }
    }

    /// Lets `body` write up to `count` bytes at the end of the buffer and keeps the bytes it
    /// reports; on a throw nothing is kept.
    mutating func append<E: Error>(upTo count: Int, _ body: (UnsafeMutableRawBufferPointer) throws(E) -> Int) throws {
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: count))
        let kept: Int
        do {
            kept = try buffer.withUnsafeMutableBytes { all in try body(UnsafeMutableRawBufferPointer(rebasing: all[start..<start + count])) }
        } catch {
            buffer.removeLast(count)
            throw error
        }
        buffer.removeLast(count - kept)
        if buffer.count >= 1 << 16 { try flush() }
    }

    mutating func flush() throws {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { Foundation.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw OperatorError("writing the output failed: \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
