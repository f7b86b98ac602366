import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A real peer (openssl s_server, mosquitto, …) run as a child process for the length of a test.
public final class PeerProcess: Sendable {
    private let process: ChildProcess
    private let collected: PeerOutput
    /// Kept for the life of the peer: once its read end closes, the peer's next write fails.
    private let outputPipe: Pipe

    /// Starts `executable` with `arguments` and waits until its combined output contains `readyMarker` (`nil`: a
    /// peer that prints nothing when ready; the caller waits for it some other way, e.g. for its port).
    public init(
        _ executable: String,
        _ arguments: [String],
        readyMarker: String?,
        environment: [String: String]? = nil,
        timeout: Duration = .seconds(10)
    ) async throws {
        let (process, pipe, output) = try Self.start(executable, arguments, environment: environment)
        self.process = process
        self.collected = output
        self.outputPipe = pipe
        guard let readyMarker else { return }
        // The wait ends when the marker arrives, or when the output ends (the peer exited), or at the time-out.
        if await output.wait(timeout: timeout, forText: readyMarker) { return }
        // The output ended: the peer exits (its status may take a moment to be there).
        let exited = (try? await process.exited(within: .milliseconds(output.hasEnded ? 2000 : 0))) ?? nil
        if exited != nil {
            output.readNow()
            throw TestFailure("\(executable) exited early (status \(process.terminationStatus)): \(output.text)")
        }
        self.stop()
        throw TestFailure("\(executable) not ready after \(timeout): \(output.text)")
    }

    /// The process id.
    public var processIdentifier: Int32 { self.process.pid }

    /// Everything the peer printed so far.
    public var output: String { self.collected.text }
    /// Whether the peer is still running.
    public var isRunning: Bool { self.process.isRunning }

    /// Waits until the output contains `text` or the timeout passes; returns whether it appeared.
    public func waitForOutput(containing text: String, timeout: Duration = .seconds(5)) async -> Bool {
        await self.collected.wait(timeout: timeout, forText: text)
    }

    /// Waits until the output satisfies `predicate` (checked whenever more arrives) or the timeout passes; returns
    /// whether it does.
    public func waitForOutput(
        timeout: Duration = .seconds(5),
        where predicate: @escaping @Sendable (String) -> Bool
    ) async -> Bool {
        await self.collected.wait(timeout: timeout, until: predicate)
    }

    /// Sends SIGINT (the peer's orderly shutdown, like Ctrl-C).
    public func interrupt() { self.process.signal(SIGINT) }

    /// Interrupts the peer (SIGINT, its orderly shutdown) and waits, at most `limit`, for it to exit, without blocking
    /// a thread of the cooperative pool (the in-process servers of the other tests need them); kills it when it does
    /// not. Returns its status (`nil`: it had to be killed).
    @discardableResult
    public func shutDown(within limit: Duration = .seconds(10)) async -> Int32? {
        self.interrupt()
        if let status = try? await self.process.exited(within: limit) {
            self.collected.readNow()
            return status
        }
        self.stop()
        return nil
    }

    /// Kills the peer (SIGKILL: children spawned from Dispatch threads may have SIGTERM blocked) and waits for it.
    public func stop() {
        self.process.stop()
        // What the peer wrote last is in the pipe now that it is reaped (a loaded machine may not have read it yet):
        // keep it.
        self.collected.readNow()
    }

    deinit { self.stop() }

    /// Runs a command to completion without blocking a thread (for clients of an in-process server), killing it
    /// after `timeout`; returns its exit status (-1 when killed) and combined output.
    public static func complete(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        input: String? = nil,
        timeout: Duration = .seconds(60)
    ) async throws -> (status: Int32, output: String) {
        let (process, _, output) = try Self.start(executable, arguments, environment: environment, input: input)
        guard try await process.exited(within: timeout) != nil else {
            process.stop()
            output.readNow()
            return (-1, output.text + "\n[killed after \(timeout)]")
        }
        return (process.terminationStatus, await Self.rest(of: output))
    }

    /// All a finished process printed: up to the pipe's end, or, when a child it started still holds the pipe open,
    /// what the pipe holds after a short wait for that end.
    private static func rest(of output: PeerOutput) async -> String {
        if !(await output.waitForEnd(timeout: .seconds(2))) { output.readNow() }
        return output.text
    }

    /// Starts a process with stdout and stderr joined into one pipe collected as it arrives, and `input` (a few
    /// bytes: it is written before the process starts reading) or nothing on stdin.
    private static func start(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]?,
        input: String? = nil
    ) throws -> (ChildProcess, Pipe, PeerOutput) {
        let pipe = Pipe()
        let output = try PeerOutput(reading: pipe.fileHandleForReading.fileDescriptor)
        let null = open("/dev/null", O_RDWR)
        defer { close(null) }
        let inputPipe = input.map { _ in Pipe() }
        if let inputPipe, let input {
            inputPipe.fileHandleForWriting.write(Data(input.utf8))
            try inputPipe.fileHandleForWriting.close()
        }
        defer { try? inputPipe?.fileHandleForReading.close() }
        let process = try ChildProcess(
            executable,
            arguments,
            environment: environment,
            stdin: inputPipe?.fileHandleForReading.fileDescriptor ?? null,
            stdout: pipe.fileHandleForWriting.fileDescriptor,
            stderr: pipe.fileHandleForWriting.fileDescriptor
        )
        // The child has its copy; without closing ours the reader never sees the end.
        try pipe.fileHandleForWriting.close()
        return (process, pipe, output)
    }

    /// Like ``complete(_:_:environment:timeout:)`` but with stdout and stderr apart; `input` is written to the
    /// process's standard input, which is then closed (no input: `/dev/null`).
    public static func capture(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        input: String? = nil,
        timeout: Duration = .seconds(120)
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let out = Pipe()
        let err = Pipe()
        let stdin = input.map { _ in Pipe() }
        let stdout = try PeerOutput(reading: out.fileHandleForReading.fileDescriptor)
        let stderr = try PeerOutput(reading: err.fileHandleForReading.fileDescriptor)
        let null = open("/dev/null", O_RDWR)
        defer { close(null) }
        let process = try ChildProcess(
            executable,
            arguments,
            environment: environment,
            stdin: stdin?.fileHandleForReading.fileDescriptor ?? null,
            stdout: out.fileHandleForWriting.fileDescriptor,
            stderr: err.fileHandleForWriting.fileDescriptor
        )
        try out.fileHandleForWriting.close()
        try err.fileHandleForWriting.close()
        if let stdin, let input {
            try stdin.fileHandleForReading.close()
            // Small inputs (a few hundred KB at most in the tests) fit the pipe while the child reads them.
            try stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        if try await process.exited(within: timeout) == nil { process.stop() }
        let standardOutput = await Self.rest(of: stdout)
        let standardError = await Self.rest(of: stderr)
        return (process.terminationStatus, standardOutput, standardError)
    }

    /// The Python of the client-peer venv (azure-iot-device, paho-mqtt, uamqp) that `scripts/ensure-deps.sh test`
    /// installs.
    public static var clientPython: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build-peers/clients/bin/python").path
    }

    /// amqtt's broker command in its own venv (`scripts/ensure-deps.sh test` installs it).
    public static var amqttBroker: String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent(".build-peers/amqtt/bin/amqtt").path
    }

    /// A script in `Tests/Peers`.
    public static func peerScript(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent(
            "Peers/\(name)"
        ).path
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago, for a peer that is told its port. It is drawn from below
    /// the kernel's ephemeral range, where nothing that binds port 0 (every emulator in the suite) can take it
    /// between this call and the peer's bind.
    /// A port is never handed out twice by one test process (two calls in a row could otherwise draw the same free
    /// port, as a mosquitto with four listeners once did).
    public static func freePort() throws -> Int {
        let text =
            (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? "32768 60999"
        let ephemeralStart =
            Int(text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first ?? "") ?? 32768
        let range = 10_000..<max(10_001, min(ephemeralStart, 65_536))
        for _ in 0..<200 {
            let port = Int.random(in: range)
            guard Self.handedOut.withLock({ $0.insert(port).inserted }) else { continue }
            if Self.canBind(port) { return port }
        }
        throw TestFailure("no free port below \(range.upperBound)")
    }

    private static let handedOut = Mutex<Set<Int>>([])

    private static func canBind(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        } == 0
    }
}
