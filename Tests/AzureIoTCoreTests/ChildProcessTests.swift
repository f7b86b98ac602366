import AzureIoTTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The test peers' process wait: on the child's pidfd through the reactor, not by polling.
@Suite("Child processes", .timeLimit(.minutes(1)))
struct ChildProcessTests {
    static func start(_ arguments: [String]) throws -> ChildProcess {
        let null = open("/dev/null", O_RDWR)
        defer { close(null) }
        return try ChildProcess("/bin/sh", ["-c"] + arguments, stdin: null, stdout: null, stderr: null)
    }

    @Test("a child that exits is seen at once with its status; one that does not is still running at the limit")
    func exited() async throws {
        let quick = try Self.start(["exit 3"])
        #expect(try await quick.exited(within: .seconds(30)) == 3)
        let slow = try Self.start(["sleep 30"])
        #expect(try await slow.exited(within: .milliseconds(100)) == nil)
        #expect(slow.isRunning)
        slow.signal(SIGTERM)
        #expect(try await slow.exited(within: .seconds(30)) == -1)
    }
}
