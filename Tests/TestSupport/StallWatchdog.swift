import Foundation
import Synchronization

/// A diagnostic for tests that fail only on a loaded machine. With `AZURE_IOT_STALL_DUMP=dir` set, a thread of its
/// own checks every 250 ms that the cooperative pool starts a new task, and appends to `dir/log.txt` each time that
/// took over a second; with `AZURE_IOT_STALL_GDB=1` too, the first two waits past 2 s also dump every thread's stack
/// with gdb into `dir` (that is how a test generating 20 MB a byte at a time was found holding both threads for
/// 15 s). Started by ``TestPKI/shared()``, which nearly every networked test calls; off when the variable is unset.
final class StallWatchdog: Sendable {
    static let started: Bool = {
        guard let directory = ProcessInfo.processInfo.environment["AZURE_IOT_STALL_DUMP"] else { return false }
        let thread = Thread { run(directory) }
        thread.start()
        return true
    }()

    final class Flag: Sendable { let value = Atomic<Bool>(false) }

    static func run(_ directory: String) {
        var index = 0
        while true {
            let flag = Flag()
            let start = Date()
            Task.detached { flag.value.store(true, ordering: .relaxed) }
            var dumped = false
            while !flag.value.load(ordering: .relaxed) {
                usleep(50_000)
                if !dumped, index < 2, ProcessInfo.processInfo.environment["AZURE_IOT_STALL_GDB"] != nil,
                    Date().timeIntervalSince(start) > 2
                {
                    dumped = true
                    index += 1
                    let path = "\(directory)/stall-\(index).txt"
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: "/usr/bin/gdb")
                    process.arguments = [
                        "-p", String(getpid()), "-batch", "-ex", "thread apply all bt 25",
                    ]
                    _ = FileManager.default.createFile(atPath: path, contents: nil)
                    process.standardOutput = FileHandle(forWritingAtPath: path)
                    process.standardError = FileHandle.nullDevice
                    try? process.run()
                    process.waitUntilExit()
                }
            }
            let waited = Date().timeIntervalSince(start)
            if waited > 1 {
                let line = "\(Date()) pool answered after \(String(format: "%.1f", waited)) s\n"
                if let handle = FileHandle(forWritingAtPath: "\(directory)/log.txt") {
                    handle.seekToEndOfFile()
                    handle.write(Data(line.utf8))
                } else {
                    _ = FileManager.default.createFile(atPath: "\(directory)/log.txt", contents: Data(line.utf8))
                }
            }
            usleep(250_000)
        }
    }
}
