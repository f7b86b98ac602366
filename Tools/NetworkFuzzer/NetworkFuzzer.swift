import ArgumentParser
import AzureIoTCore
import Foundation
import HubAMQP
import HubMQTT

#if canImport(Glibc)
    import Glibc
#endif

/// `azure-iot-netfuzz`: a structure-aware network fuzzer for the emulator. It starts `azure-iot emulator` as a child
/// process, then plays cases against its MQTT, AMQP and DPS ports: a valid exchange (before or after
/// authentication, with fields drawn from edge values), mutated at the packet and byte level. After every batch it
/// checks that the emulator is alive, under its memory limit, and still serves a normal device (CONNECT, a QoS 1
/// PUBLISH and its PUBACK). A finding stops the run and is written down with its seed and bytes.
@main
struct NetworkFuzzer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "azure-iot-netfuzz",
        abstract: "Fuzz a running azure-iot emulator over the network (MQTT, AMQP, DPS) and check it survives."
    )

    @Option(parsing: .unconditional, help: "Stop after this many seconds, 1 to 86400.")
    var seconds: Int = 60

    @Option(parsing: .unconditional, help: "Stop after this many cases (instead of --seconds).")
    var cases: Int?

    @Option(
        parsing: .unconditional,
        help: "The random seed (default: from the clock); the same seed plays the same cases."
    )
    var seed: UInt64?

    @Option(parsing: .unconditional, help: "Check the emulator after every this many cases.")
    var checkEvery: Int = 20

    @Option(parsing: .unconditional, help: "The emulator's resident memory limit in MiB.")
    var memoryLimit: Int = 512

    @Option(help: "The azure-iot binary (default: the one beside this tool).")
    var emulator: String?

    @Option(help: "Where findings are written.")
    var findings: String = ".build/netfuzz-findings"

    @Flag(help: "Skip the pre-authentication flood that measures the emulator's memory.")
    var noFlood = false

    func validate() throws {
        guard (1...86_400).contains(self.seconds) else { throw ValidationError("--seconds must be 1...86400") }
        if let cases, !(1...100_000_000).contains(cases) { throw ValidationError("--cases must be 1...100000000") }
        guard (1...10_000).contains(self.checkEvery) else { throw ValidationError("--check-every must be 1...10000") }
        guard (16...65_536).contains(self.memoryLimit) else {
            throw ValidationError("--memory-limit must be 16...65536 MiB")
        }
    }

    func run() async throws {
        let seed = self.seed ?? UInt64(Date().timeIntervalSince1970 * 1000)
        let binary =
            self.emulator
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
                "azure-iot"
            ).path
        let target = try await EmulatorProcess.start(binary: binary)
        defer { target.stop() }
        say(
            "network fuzzer: seed \(seed), emulator pid \(target.pid), MQTT :\(target.mqttPort) AMQP :\(target.amqpPort) DPS :\(target.dpsPort) service :\(target.servicePort) blob :\(target.blobPort) WebSockets :\(target.webSocketPort)"
        )
        var random = SplitMix64(seed: seed)
        var counts = [
            Protocol.mqtt: 0, .amqp: 0, .dps: 0, .dpsAMQP: 0, .service: 0, .blob: 0, .workload: 0, .mqttWebSocket: 0,
            .amqpWebSocket: 0,
        ]
        var peak = target.residentBytes()
        let clock = ContinuousClock()
        let start = clock.now
        let end = start + .seconds(self.seconds)
        var index = 0
        while self.cases.map({ index < $0 }) ?? (clock.now < end) {
            let fuzzCase = FuzzCase.make(&random, target: target)
            counts[fuzzCase.protocol, default: 0] += 1
            await fuzzCase.play(target)
            index += 1
            if index % self.checkEvery == 0 || (self.cases.map { index == $0 } ?? false) {
                peak = max(peak, target.residentBytes())
                if let problem = await self.check(target) {
                    try self.record(problem, fuzzCase, seed: seed, index: index)
                    throw ExitCode(1)
                }
            }
        }
        let elapsed = clock.now - start
        let perProtocol = Protocol.allCases.map { "\($0) \(counts[$0, default: 0])" }.joined(separator: ", ")
        say(
            "network fuzzer: \(index) cases (\(perProtocol)) in \(elapsed), 0 findings; emulator peak RSS \(peak >> 20) MiB (limit \(self.memoryLimit) MiB)"
        )
        if !self.noFlood {
            let report = try await PreAuthenticationFlood.run(target)
            say("pre-authentication flood: \(report)")
            if let problem = await self.check(target) {
                say("after the flood: \(problem)")
                throw ExitCode(1)
            }
        }
        say("fuzzer result: \(index) passed, 0 failed")
    }

    /// Why the emulator is not well, or `nil`.
    func check(_ target: EmulatorProcess) async -> String? {
        guard target.isRunning else { return "the emulator died (status \(target.terminationStatus))" }
        let resident = target.residentBytes()
        guard resident <= self.memoryLimit << 20 else {
            return "the emulator holds \(resident >> 20) MiB, over the \(self.memoryLimit) MiB limit"
        }
        do {
            try await NormalDevice.sendOneMessage(target)
        } catch {
            // A process that was just killed may still count as running until it is reaped.
            try? await Task.sleep(for: .milliseconds(500))
            guard target.isRunning else { return "the emulator died (status \(target.terminationStatus))" }
            return "a normal device could not send: \(error); \(Self.diagnose(port: target.mqttPort))"
        }
        // The workload API still answers a well-formed request.
        let answer = UnixSocketClient.exchange(
            path: target.workloadSocket,
            [
                Array(
                    "GET /trust-bundle?api-version=2019-01-30 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                        .utf8
                )
            ],
            readTimeoutMilliseconds: 5000
        )
        guard String(decoding: answer.prefix(12), as: UTF8.self) == "HTTP/1.1 200" else {
            return "the workload API did not answer a trust-bundle request (\(answer.count) bytes back)"
        }
        return nil
    }

    /// What the kernel says of the MQTT port: a plain IPv4 connect, and the listening socket with its backlog.
    static func diagnose(port: Int) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        let outcome =
            connected == 0 ? "an IPv4 connect succeeds" : "an IPv4 connect fails: \(String(cString: strerror(errno)))"
        close(fd)
        let ss = Process()
        ss.executableURL = URL(fileURLWithPath: "/usr/bin/ss")
        ss.arguments = ["-tan", "sport = :\(port) or dport = :\(port)"]
        let pipe = Pipe()
        ss.standardOutput = pipe
        try? ss.run()
        ss.waitUntilExit()
        let lines = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(
            separator: "\n"
        )
        let states = Dictionary(
            grouping: lines.dropFirst().map { String($0.split(separator: " ").first ?? "") },
            by: { $0 }
        ).mapValues(\.count)
        let listening = lines.first { $0.hasPrefix("LISTEN") }.map(String.init) ?? "no LISTEN socket"
        return "\(outcome); \(listening); sockets by state: \(states)"
    }

    func record(_ problem: String, _ fuzzCase: FuzzCase, seed: UInt64, index: Int) throws {
        try FileManager.default.createDirectory(atPath: self.findings, withIntermediateDirectories: true)
        let path = "\(self.findings)/finding-\(seed)-\(index).txt"
        var text =
            "problem: \(problem)\nseed: \(seed)\ncase: \(index) (the last of its batch of \(self.checkEvery))\nprotocol: \(fuzzCase.protocol)\n"
        for (number, chunk) in fuzzCase.chunks.enumerated() {
            text += "chunk \(number): \(chunk.map { String(format: "%02x", $0) }.joined())\n"
        }
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        say("network fuzzer: FINDING after \(index) cases: \(problem) (written to \(path))")
    }
}

enum Protocol: String, CaseIterable, CustomStringConvertible {
    case mqtt, amqp, dps, service, blob, workload
    case dpsAMQP = "dps-amqp"
    case mqttWebSocket = "mqtt-ws"
    case amqpWebSocket = "amqp-ws"
    var description: String { self.rawValue }
}

/// A small, fast, seedable generator (SplitMix64), so that a seed replays its cases.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// One line on standard output, written at once (not held in a buffer when output goes to a file).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
