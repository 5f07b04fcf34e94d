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

    public static func run(count: Int, valueLength: Int = 20) throws -> Result {
        let fernet = try Fernet(key: FernetKey.generate())
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: valueLength)
        var tokens: [String] = []
        tokens.reserveCapacity(count)
        let clock = ContinuousClock()
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
    }

    static func threadCPUSeconds() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }
}

