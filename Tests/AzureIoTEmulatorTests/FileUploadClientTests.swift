import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation
import HubFileUpload
import Testing

/// This SDK's file upload against the emulator: 20 MB in blocks with storage hiccups, a storage that keeps failing
/// (reported to the hub), and bad arguments.
@Suite("File upload client")
struct FileUploadClientTests {
    static func client(_ fixture: EmulatorFixture, attempts: Int = 3) throws -> FileUploadClient {
        var configuration = try FileUploadClient.Configuration(
            connectionString: try ConnectionString(
                parsing:
                    "HostName=\(fixture.hubHost);DeviceId=dev1;SharedAccessKey=\(EmulatorFixture.deviceKey);GatewayHostName=localhost"
            ),
            trustRoots: fixture.trust,
            port: fixture.endpoints.service.port
        )
        configuration.attemptsPerBlock = attempts
        return try FileUploadClient(configuration: configuration)
    }

    @Test("20 MB in 4 MiB blocks, two of them failed once by storage and sent again: the emulator holds the same bytes")
    func largeFile() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let (path, data) = try FileUploadTests.randomFile(bytes: 20_000_000)
        await fixture.emulator.failNextBlobBlocks(2)
        let result = try await Self.client(fixture).upload(contentsOfFile: path, as: "firmware/dump.bin")
        #expect(result.byteCount == 20_000_000 && result.blockCount == 5 && result.retriedBlocks == 2)
        #expect(result.blobName == "dev1/firmware/dump.bin")
        let record = try #require(await fixture.emulator.fileUploads().first)
        #expect(record.correlationId == result.correlationId && record.notified && record.isSuccess == true)
        let file = try #require(record.path)
        #expect(FileManager.default.contents(atPath: file) == data)
    }

    @Test("a block storage keeps refusing ends in blockFailed after the attempts, and the hub hears of the failure")
    func failingStorage() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        await fixture.emulator.failNextBlobBlocks(100)
        await #expect(throws: FileUploadError.self) {
            _ = try await Self.client(fixture, attempts: 2).upload(Array(repeating: 7, count: 100_000), as: "x.bin")
        }
        let client = try Self.client(fixture, attempts: 2)
        do {
            _ = try await client.upload(Array(repeating: 7, count: 100_000), as: "y.bin")
            Issue.record("the upload went through a failing storage")
        } catch {
            #expect(error.code == .blockFailed && error.status == 500)
        }
        let records = await fixture.emulator.fileUploads()
        #expect(records.count == 2 && records.allSatisfy { $0.notified && $0.isSuccess == false && $0.path == nil })
    }

    @Test("bad arguments: a missing file, an empty blob name, block sizes and attempts out of range, a module string")
    func refusals() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try Self.client(fixture)
        do {
            _ = try await client.upload(contentsOfFile: "/nonexistent/file", as: "a")
            Issue.record("a missing file was uploaded")
        } catch {
            #expect(error.code == .fileNotReadable)
        }
        do {
            _ = try await client.upload([1], as: "")
            Issue.record("an empty name was accepted")
        } catch {
            #expect(error.code == .invalidArgument)
        }
        var configuration = client.configuration
        configuration.blockSize = 10
        #expect(throws: FileUploadError.self) { try FileUploadClient(configuration: configuration) }
        configuration.blockSize = 4 << 20
        configuration.attemptsPerBlock = 0
        #expect(throws: FileUploadError.self) { try FileUploadClient(configuration: configuration) }
        #expect(throws: FileUploadError.self) {
            try FileUploadClient.Configuration(
                connectionString: try ConnectionString(
                    parsing: "HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey=\(EmulatorFixture.moduleKey)"
                )
            )
        }
        #expect(await fixture.emulator.fileUploads().isEmpty)
    }
}
