import AzureIoTCore
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A child process started with `posix_spawn`, for the peers the tests run. Not `Foundation.Process`: on Linux its
/// `run()` copies 256 bytes out of every `/proc/self/fd` directory entry and crashes the test process when a short
/// entry sits at the end of a mapped page (swiftlang/swift-corelibs-foundation#5472, fixed upstream after Swift
/// 6.3.1; a CI run of this suite hit it). Every descriptor but the three given is closed in the child, as
/// `Process` does, with glibc's `posix_spawn_file_actions_addclosefrom_np`.
package final class ChildProcess: Sendable {
    /// The process id.
    package let pid: Int32
    private let exitStatus = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments` (and `environment`, or this process's), its standard input, output and
    /// error on the given descriptors (which the caller keeps and closes).
    package init(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil,
        stdin: Int32,
        stdout: Int32,
        stderr: Int32
    ) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (from, to) in [(stdin, Int32(0)), (stdout, 1), (stderr, 2)] {
            posix_spawn_file_actions_adddup2(&actions, from, to)
        }
        guard let closeFrom = Self.addCloseFrom else {
            throw TestFailure("this glibc has no posix_spawn_file_actions_addclosefrom_np (2.34 or later needed)")
        }
        _ = closeFrom(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The child starts with no signal blocked and default handlers (threads of this process may block some).
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let environmentEntries =
            environment.map { $0.map { "\($0.key)=\($0.value)" } }
            ?? ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        let envp = environmentEntries.map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw TestFailure("cannot start \(executable): \(String(cString: strerror(result)))")
        }
        self.pid = pid
    }

    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: CloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        else { return nil }
        return unsafeBitCast(symbol, to: CloseFrom.self)
    }()

    /// Whether the child has not exited yet (reaps it when it has).
    package var isRunning: Bool { self.poll() == nil }

    /// The exit status (-1 when a signal ended it); meaningful once ``isRunning`` is false.
    package var terminationStatus: Int32 { self.poll() ?? -1 }

    /// Sends `signal` unless the child is already reaped.
    package func signal(_ signal: Int32) {
        if self.poll() == nil { kill(self.pid, signal) }
    }

    /// Waits, at most `limit`, for the child to exit; returns its status, or `nil` when `limit` passed first.
    @discardableResult
    package func wait(within limit: Duration = .seconds(10)) -> Int32? {
        let end = ContinuousClock.now + limit
        while ContinuousClock.now < end {
            if let status = self.poll() { return status }
            usleep(5_000)
        }
        return self.poll()
    }

    /// Waits, at most `limit`, for the child to exit, without holding a thread: its pidfd becomes readable when it
    /// exits, and that wait goes through the SDK's reactor. Returns its status, or `nil` when `limit` passed first.
    package func exited(within limit: Duration) async throws -> Int32? {
        if let status = self.poll() { return status }
        guard let open = Self.pidfdOpen else {
            throw TestFailure("this glibc has no pidfd_open (2.36 or later needed)")
        }
        let descriptor = open(self.pid, 0)
        // The child is gone already (and reaped by someone): what poll() says is all there is.
        guard descriptor >= 0 else { return self.poll() }
        defer {
            IOReactor.shared.failWaiters(fd: descriptor, with: AzureIoTError(.connectionClosed, "pidfd closed"))
            close(descriptor)
        }
        do {
            try await IOReactor.shared.wait(
                fd: descriptor,
                for: .readable,
                deadline: MonotonicClock.deadline(after: limit)
            )
        } catch let error as AzureIoTError where error.code == .timedOut {
            return self.poll()
        }
        return self.poll()
    }

    private typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    private static let pidfdOpen: PidfdOpen? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pidfd_open") else { return nil }
        return unsafeBitCast(symbol, to: PidfdOpen.self)
    }()

    /// Kills the child (SIGKILL) and waits for it.
    package func stop() {
        guard self.poll() == nil else { return }
        kill(self.pid, SIGKILL)
        self.wait()
    }

    private func poll() -> Int32? {
        self.exitStatus.withLock { status -> Int32? in
            if let status { return status }
            var raw: Int32 = 0
            let result = waitpid(self.pid, &raw, WNOHANG)
            guard result == self.pid else { return nil }
            // WIFEXITED / WEXITSTATUS, which Swift does not import.
            let exit = raw & 0x7F == 0 ? (raw >> 8) & 0xFF : -1
            status = exit
            return exit
        }
    }
}

/// Waits, at most `limit`, until `fd` is readable (data, its end, or an error to read), through the SDK's reactor
/// rather than on a poll; returns whether it became readable.
package func waitUntilReadable(_ fd: Int32, within limit: Duration) async -> Bool {
    do {
        try await IOReactor.shared.wait(fd: fd, for: .readable, deadline: MonotonicClock.deadline(after: limit))
        return true
    } catch {
        return false
    }
}
