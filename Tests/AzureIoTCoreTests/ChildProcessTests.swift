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

/// The test peers' output: read as it arrives, waits that end when the text comes (or the peer's output ends), and
/// nothing lost at the end.
@Suite("Peer process output", .timeLimit(.minutes(1)))
struct PeerProcessOutputTests {
    @Test("the ready marker is seen when it arrives, also split over two writes; a peer that exits first is reported")
    func readyMarker() async throws {
        let clock = ContinuousClock()
        var start = clock.now
        let peer = try await PeerProcess(
            "/bin/sh",
            ["-c", "printf 'starting\\nre'; sleep 0.2; printf 'ady\\n'; exec sleep 30"],
            readyMarker: "ready",
            timeout: .seconds(30)
        )
        #expect(clock.now - start < .seconds(20))
        #expect(peer.output == "starting\nready\n")
        peer.stop()
        #expect(!peer.isRunning)

        start = clock.now
        let early = await #expect(throws: TestFailure.self) {
            _ = try await PeerProcess(
                "/bin/sh",
                ["-c", "echo nope; exit 3"],
                readyMarker: "ready",
                timeout: .seconds(30)
            )
        }
        #expect(clock.now - start < .seconds(20), "an exited peer is not waited for until the time-out")
        #expect(early?.description.contains("exited early (status 3): nope") == true, "\(String(describing: early))")
    }

    @Test("waitForOutput ends when the text arrives, and says false at its time-out when it never does")
    func waitForOutput() async throws {
        let peer = try await PeerProcess(
            "/bin/sh",
            ["-c", "echo one; exec sleep 30"],
            readyMarker: "one"
        )
        #expect(await !peer.waitForOutput(containing: "two", timeout: .milliseconds(200)))
        peer.stop()
        let talker = try await PeerProcess(
            "/bin/sh",
            ["-c", "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; exec sleep 30"],
            readyMarker: nil
        )
        #expect(await talker.waitForOutput(containing: "line 2999\n", timeout: .seconds(30)))
        #expect(await talker.waitForOutput(timeout: .seconds(30)) { $0.hasPrefix("line 0\nline 1\n") })
        talker.stop()
    }

    @Test("complete and capture keep every byte a process printed, and end when a child of it keeps the pipe open")
    func completeKeepsEverything() async throws {
        // 200,000 bytes, more than a pipe holds: read while the process runs, and to the end after it exits.
        let (status, output) = try await PeerProcess.complete(
            "/bin/sh",
            ["-c", "head -c 200000 /dev/zero | tr '\\0' x; echo; echo end; exit 4"]
        )
        #expect(status == 4)
        #expect(output.utf8.count == 200_005 && output.hasSuffix("x\nend\n"))
        let captured = try await PeerProcess.capture("/bin/sh", ["-c", "echo out; echo err >&2; exit 0"])
        #expect(captured.status == 0 && captured.stdout == "out\n" && captured.stderr == "err\n")
        // A background child holds the pipe for 30 s: the call still returns once the process itself exits.
        let clock = ContinuousClock()
        let start = clock.now
        let held = try await PeerProcess.complete("/bin/sh", ["-c", "sleep 30 & echo done"])
        #expect(held.status == 0 && held.output == "done\n")
        #expect(clock.now - start < .seconds(20))
    }
}
