import AzureIoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `azure-iot emulator` against more clients than it has file descriptors, as issue #10 found it (100 % CPU retrying
/// accept, then SIGILL inside libdispatch, which opens `/proc` files to manage its threads, and no recovery): run with
/// an open-file limit of 200 and a configured connection limit of 1,000. The emulator lowers the limit to keep
/// descriptors in reserve and sheds the rest; its accept loop backs off should anything else take the last ones.
@Suite("azure-iot emulator out of file descriptors")
struct EmulatorResourceExhaustionTests {
    /// User + system CPU time of `pid`, in clock ticks (1/100 s).
    static func cpuTicks(_ pid: Int32) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command name: state is field 3, utime 14 and stime 15 (1-based over the whole line).
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }

    static func socket(to port: Int) -> Int32? {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected != 0 {
            close(fd)
            return nil
        }
        return fd
    }

    @Test("300 idle connections against 200 file descriptors: no spin, no crash, and it serves once they close")
    func outOfFileDescriptors() async throws {
        let directory = NSTemporaryDirectory() + "emfile-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config =
            #"{"hubName": "h", "stateDirectory": "\#(directory)", "limits": {"maximumConnections": 1000, "maximumConnectionsPerSource": 1000, "handshakeTimeoutSeconds": 60}, "provisioning": {"idScope": "0ne00EMF1", "individualEnrollments": [{"registrationId": "r", "primaryKey": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}]}}"#
        try config.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "azure-iot"
        ).path
        let emulator = try await PeerProcess(
            "/bin/bash",
            ["-c", "ulimit -n 200 && exec '\(binary)' emulator --config '\(directory)/config.json'"],
            readyMarker: "caCertificatePath",
            timeout: .seconds(60)
        )
        defer { emulator.stop() }
        let endpoints = try #require(
            try JSONSerialization.jsonObject(
                with: Data(emulator.output.split(separator: "\n").first { $0.contains("caCertificatePath") }!.utf8)
            )
                as? [String: Any]
        )
        let dpsPort = try #require((endpoints["dps"] as? [String: Any])?["port"] as? Int)
        let ca = try #require(endpoints["caCertificatePath"] as? String)

        var held: [Int32] = []
        defer { for fd in held { close(fd) } }
        for _ in 0..<300 {
            if let fd = Self.socket(to: dpsPort) { held.append(fd) }
        }
        #expect(held.count == 300)
        try await Task.sleep(for: .milliseconds(500))
        let before = Self.cpuTicks(emulator.processIdentifier)
        try await Task.sleep(for: .seconds(2))
        let spent = Self.cpuTicks(emulator.processIdentifier) - before
        // Retrying accept without a pause burned the whole core (200 ticks in 2 s); backing off costs next to nothing.
        #expect(spent < 100, "the emulator used \(spent) ticks of CPU in 2 s")
        #expect(emulator.isRunning, "\(emulator.output)")

        for fd in held { close(fd) }
        held.removeAll()
        // Once descriptors are free again, DPS answers (401 without credentials) within the back-off's second.
        var status = ""
        for _ in 0..<20 where status != "401" {
            let answer = try await PeerProcess.capture(
                "/usr/bin/curl",
                [
                    "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert", ca, "-X", "PUT",
                    "-d", "{}",
                    "https://localhost:\(dpsPort)/0ne00EMF1/registrations/r/register?api-version=2021-06-01",
                ]
            )
            status = answer.stdout
            if status != "401" { try await Task.sleep(for: .milliseconds(500)) }
        }
        #expect(status == "401")
        #expect(emulator.isRunning, "\(emulator.output.suffix(3000))")
    }
}
