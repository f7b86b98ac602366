import AzureIoTCore
import DPSClient
import Foundation

/// Registers `count` devices (group enrollment, ids `{prefix}-{n}`) with at most `concurrency` in flight, and prints
/// `swift <concurrency> <count> registrations in <s> s = <rate>/s, client CPU <ms> ms/registration`.
/// usage: DPSBenchmark ENDPOINT SCOPE GROUPKEY CAFILE CONCURRENCY COUNT PREFIX
@main
enum DPSBenchmark {
    static func main() async throws {
        let arguments = CommandLine.arguments
        guard arguments.count == 8, let concurrency = Int(arguments[5]), let count = Int(arguments[6]) else {
            FileHandle.standardError.write(
                Data("usage: DPSBenchmark ENDPOINT SCOPE GROUPKEY CAFILE CONCURRENCY COUNT PREFIX\n".utf8)
            )
            exit(2)
        }
        let (endpoint, scope, caFile, prefix) = (arguments[1], arguments[2], arguments[4], arguments[7])
        let groupKey = try SymmetricKey(base64: arguments[3])
        let cpuBefore = cpuSeconds()
        let clock = ContinuousClock()
        let start = clock.now
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            var next = 0
            var failures = 0
            func launch(_ index: Int) {
                group.addTask {
                    let client = try ProvisioningClient(
                        configuration: .init(
                            endpoint: endpoint,
                            idScope: scope,
                            registrationId: "\(prefix)-\(index)",
                            attestation: .groupSymmetricKey(groupKey),
                            trustRoots: .pemFile(caFile)
                        )
                    )
                    do {
                        _ = try await client.register(timeout: .seconds(300))
                        return 0
                    } catch {
                        FileHandle.standardError.write(Data("registration \(index) failed: \(error)\n".utf8))
                        return 1
                    }
                }
            }
            while next < min(concurrency, count) {
                launch(next)
                next += 1
            }
            while let failed = try await group.next() {
                failures += failed
                if next < count {
                    launch(next)
                    next += 1
                }
            }
            return failures
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = cpuSeconds() - cpuBefore
        print(
            String(
                format:
                    "swift   concurrency %4d: %5d registrations in %7.2f s = %7.1f/s, client CPU %6.2f ms/registration, %d failed",
                concurrency,
                count,
                seconds,
                Double(count) / seconds,
                cpu * 1000 / Double(count),
                failures
            )
        )
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
            + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
    }
}
