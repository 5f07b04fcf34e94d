import Foundation
import NFLDBCore

/// What hardware a worker has, detected or told by flags, and which capability queues it can serve.
public struct WorkerProfile: Sendable, Codable, Hashable {
    public var cores: Int
    public var memoryBytes: UInt64
    public var gpus: Int

    public init(cores: Int, memoryBytes: UInt64, gpus: Int) {
        self.cores = cores
        self.memoryBytes = memoryBytes
        self.gpus = gpus
    }

    /// Cores and memory from the OS; GPUs from `nvidia-smi -L` when it is installed (0 otherwise).
    public static func detect() -> WorkerProfile {
        var gpus = 0
        if let smi = try? ProcessRunner.resolveExecutable("nvidia-smi", extraDirectories: ["/usr/bin", "/usr/local/bin"]) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: smi)
            process.arguments = ["-L"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            if (try? process.run()) != nil {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                if process.terminationStatus == 0 {
                    gpus = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("GPU ") }.count
                }
            }
        }
        return WorkerProfile(cores: ProcessInfo.processInfo.activeProcessorCount, memoryBytes: ProcessInfo.processInfo.physicalMemory, gpus: gpus)
    }

    /// Whether this profile can serve a capability queue: `gpu*` queues need a GPU; every other queue is served.
    public func canServe(_ queue: String) -> Bool {
        queue.hasPrefix("gpu") ? gpus > 0 : true
    }

    /// The queues a worker serves when none are named: cpu and io, plus gpu_high and gpu_low with a GPU.
    public var defaultQueues: [String] { gpus > 0 ? ["gpu_high", "gpu_low", "cpu", "io"] : ["cpu", "io"] }

    /// The named queues, or an error naming those this profile cannot serve.
    public func check(_ queues: [String]) throws -> [String] {
        // `--queues "$QUEUES"` with the variable unset: a worker serving nothing would idle (or exit 0 with --burst).
        guard !queues.isEmpty, !queues.contains(where: \.isEmpty) else {
            throw QueueError("--queues names no queue", hint: "Give the queues to serve, comma-separated (e.g. --queues cpu,io), or leave --queues out for \(defaultQueues.joined(separator: ",")).",
                             exitStatus: .usage)
        }
        let refused = queues.filter { !canServe($0) }
        guard refused.isEmpty else {
            throw QueueError("this worker has no GPU (nvidia-smi found none), so it cannot serve \(refused.joined(separator: ", "))",
                             hint: "Run it on a GPU host, or say --gpus N if nvidia-smi is missing but GPUs exist.", exitStatus: .usage)
        }
        return queues
    }
}
