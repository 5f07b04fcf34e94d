import Foundation
import NFLDBCore

/// The in-process measurement behind `bench/crypt` (`nfldb crypt bench`, hidden): encrypt then
/// decrypt `count` values of `valueLength` bytes with one key, single-threaded.
public enum FernetBench {
    public struct Result: Sendable {
        public let count: Int
        public let encryptSeconds: Double
        public let decryptSeconds: Double
        /// CPU time of this thread over both loops: on a shared machine, what the work cost,
        /// without the time the thread waited to be scheduled.
        public let cpuSeconds: Double
        public var totalSeconds: Double { encryptSeconds + decryptSeconds }
        public var pairsPerSecond: Double { Double(count) / totalSeconds }
    }

    /// Which entry points the loops call.
    public enum API: String, Sendable, CaseIterable {
        /// `encrypt(_:into:)` / `decrypt(_:into:)`: tokens written into one preallocated buffer,
        /// plaintext into a reused one, as `crypt encrypt|decrypt` and `crypt rotate` use them (and
        /// as the floor stores its binary tokens).
        case buffer
        /// `encrypt(_:) -> String` / `decrypt(_:) -> [UInt8]`: a `String` and an array per value.
        case string
    }

    public static func run(count: Int, valueLength: Int = 20, api: API = .buffer) throws -> Result {
        let fernet = try Fernet(key: FernetKey.generate())
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: valueLength)
        let clock = ContinuousClock()
        switch api {
        case .string:
            var tokens: [String] = []
            tokens.reserveCapacity(count)
            let cpuStarted = threadCPUSeconds()
            let started = clock.now
            for _ in 0..<count { tokens.append(try fernet.encrypt(value)) }
            let encrypted = clock.now
            var checksum = 0
            for token in tokens { checksum &+= try fernet.decrypt(token).count }
            let decrypted = clock.now
            let cpu = threadCPUSeconds() - cpuStarted
            guard checksum == count * valueLength else { throw FernetError.library("bench round trip lost bytes") }
            return Result(
                count: count, encryptSeconds: (encrypted - started).inSeconds, decryptSeconds: (decrypted - encrypted).inSeconds, cpuSeconds: cpu)
        case .buffer:
            let length = Fernet.tokenLength(plaintextCount: valueLength)
            let tokens = UnsafeMutableRawBufferPointer.allocate(byteCount: count * length, alignment: 16)
            defer { tokens.deallocate() }
            let plain = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 16)
            defer { plain.deallocate() }
            return try value.withUnsafeBytes { value in
                let cpuStarted = threadCPUSeconds()
                let started = clock.now
                for index in 0..<count {
                    _ = try fernet.encrypt(value, into: UnsafeMutableRawBufferPointer(rebasing: tokens[index * length..<(index + 1) * length]))
                }
                let encrypted = clock.now
                var checksum = 0
                for index in 0..<count {
                    checksum &+= try fernet.decrypt(UnsafeRawBufferPointer(rebasing: tokens[index * length..<(index + 1) * length]), into: plain)
                }
                let decrypted = clock.now
                let cpu = threadCPUSeconds() - cpuStarted
                guard checksum == count * valueLength else { throw FernetError.library("bench round trip lost bytes") }
                return Result(
                    count: count, encryptSeconds: (encrypted - started).inSeconds, decryptSeconds: (decrypted - encrypted).inSeconds, cpuSeconds: cpu)
            }
        }
    }

    static func threadCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

