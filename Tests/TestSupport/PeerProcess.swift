import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A real peer (openssl s_server, mosquitto, …) run as a child process for the length of a test.
public final class PeerProcess: Sendable {
    private final class OutputBuffer: Sendable {
        let text = Mutex("")
    }

    private let process: ChildProcess
    private let outputBuffer: OutputBuffer
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
        let (process, pipe, buffer) = try Self.start(executable, arguments, environment: environment)
        self.process = process
        self.outputBuffer = buffer
        self.outputPipe = pipe
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while let readyMarker, !buffer.text.withLock({ $0.contains(readyMarker) }) {
            guard process.isRunning else {
                throw TestFailure(
                    "\(executable) exited early (status \(process.terminationStatus)): \(buffer.text.withLock { $0 })"
                )
            }
            guard clock.now < end else {
                self.stop()
                throw TestFailure("\(executable) not ready after \(timeout): \(buffer.text.withLock { $0 })")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The process id.
    public var processIdentifier: Int32 { self.process.pid }

    /// Everything the peer printed so far.
    public var output: String { self.outputBuffer.text.withLock { $0 } }
    /// Whether the peer is still running.
    public var isRunning: Bool { self.process.isRunning }

    /// Waits until the output contains `text` or the timeout passes; returns whether it appeared.
    public func waitForOutput(containing text: String, timeout: Duration = .seconds(5)) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now + timeout
        while clock.now < end {
            if self.output.contains(text) { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return self.output.contains(text)
    }

    /// Sends SIGINT (the peer's orderly shutdown, like Ctrl-C).
    public func interrupt() { self.process.signal(SIGINT) }

    /// Interrupts the peer (SIGINT, its orderly shutdown) and waits, at most `limit`, for it to exit, without blocking
    /// a thread of the cooperative pool (the in-process servers of the other tests need them); kills it when it does
    /// not. Returns its status (`nil`: it had to be killed).
    @discardableResult
    public func shutDown(within limit: Duration = .seconds(10)) async -> Int32? {
        self.interrupt()
        if let status = try? await self.process.exited(within: limit) { return status }
        self.stop()
        return nil
    }

    /// Kills the peer (SIGKILL: children spawned from Dispatch threads may have SIGTERM blocked) and waits for it.
    public func stop() {
        self.process.stop()
        let handle = self.outputPipe.fileHandleForReading
        handle.readabilityHandler = nil
        // What the peer wrote last may still be in the pipe (a loaded machine reads it late): keep it.
        let rest = Self.readWithoutWaiting(handle)
        self.outputBuffer.text.withLock { $0 += rest }
    }

    /// What a pipe holds now, read without waiting: the process that wrote it is gone, but a child it started may
    /// still hold the pipe open, and a read until its end would then block a thread for as long as that child lives.
    static func readWithoutWaiting(_ handle: FileHandle) -> String {
        let fd = handle.fileDescriptor
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var bytes: [UInt8] = []
        while true {
            let count = read(fd, &chunk, chunk.count)
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
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
        let (process, pipe, buffer) = try Self.start(executable, arguments, environment: environment, input: input)
        guard try await process.exited(within: timeout) != nil else {
            process.stop()
            return (-1, buffer.text.withLock { $0 } + "\n[killed after \(timeout)]")
        }
        try await Task.sleep(for: .milliseconds(50))
        pipe.fileHandleForReading.readabilityHandler = nil
        let rest = Self.readWithoutWaiting(pipe.fileHandleForReading)
        return (process.terminationStatus, buffer.text.withLock { $0 } + rest)
    }

    /// Starts a process with stdout and stderr joined into one pipe collected into a buffer, and `input` (a few
    /// bytes: it is written before the process starts reading) or nothing on stdin.
    private static func start(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]?,
        input: String? = nil
    ) throws -> (ChildProcess, Pipe, OutputBuffer) {
        let pipe = Pipe()
        let buffer = OutputBuffer()
        Self.collect(pipe, into: buffer)
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
        return (process, pipe, buffer)
    }

    /// Appends whatever `pipe` delivers to `buffer`, as it arrives.
    private static func collect(_ pipe: Pipe, into buffer: OutputBuffer) {
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { buffer.text.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
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
        let stdout = OutputBuffer()
        let stderr = OutputBuffer()
        for (pipe, buffer) in [(out, stdout), (err, stderr)] {
            Self.collect(pipe, into: buffer)
        }
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
        try await Task.sleep(for: .milliseconds(30))
        var results: [String] = []
        for (pipe, buffer) in [(out, stdout), (err, stderr)] {
            pipe.fileHandleForReading.readabilityHandler = nil
            results.append(buffer.text.withLock { $0 } + Self.readWithoutWaiting(pipe.fileHandleForReading))
        }
        return (process.terminationStatus, results[0], results[1])
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
