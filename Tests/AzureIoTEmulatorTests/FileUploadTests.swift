import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation
import Testing

/// IoT Hub's file upload, emulated: the SAS grant on the hub's HTTPS port, a minimal blob endpoint, and the
/// notification, driven by Azure's own Python device SDK with azure-storage-blob, and refusals by curl.
@Suite("Emulator: file upload")
struct FileUploadTests {
    static func randomFile(bytes: Int) throws -> (path: String, data: Data) {
        // Read from the kernel in bulk: a random number per byte is a system call per byte, seconds of a thread the
        // other tests' in-process servers need for 20 MB.
        let source = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        defer { try? source.close() }
        var data = Data()
        while data.count < bytes { data += try source.read(upToCount: bytes - data.count) ?? Data() }
        let path = NSTemporaryDirectory() + "upload-\(UUID().uuidString.prefix(8)).bin"
        try data.write(to: URL(fileURLWithPath: path))
        return (path, data)
    }

    @Test(
        "azure-iot-device asks for a SAS URI, azure-storage-blob uploads 3.5 MB in 1 MiB blocks, the device notifies: the emulator holds the same bytes"
    )
    func pythonUpload() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let (path, data) = try Self.randomFile(bytes: 3_500_000)
        let result = try await PeerProcess.complete(
            PeerProcess.clientPython,
            [
                PeerProcess.peerScript("fidelity/azure_file_upload.py"),
                "HostName=\(fixture.hubHost);DeviceId=dev1;SharedAccessKey=\(EmulatorFixture.deviceKey);GatewayHostName=localhost",
                fixture.endpoints.caCertificatePath, String(fixture.endpoints.service.port), "reports/day-1.bin", path,
            ],
            timeout: .seconds(120)
        )
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("uploaded /uploads/dev1/reports/day-1.bin 3500000"), "\(result.output)")
        let record = try #require(await fixture.emulator.fileUploads().first)
        #expect(record.deviceId == "dev1" && record.blobName == "dev1/reports/day-1.bin")
        #expect(record.notified && record.isSuccess == true && record.statusCode == 200)
        #expect(record.statusDescription == "uploaded by azure-storage-blob" && record.size == 3_500_000)
        let file = try #require(record.path)
        let stored = try #require(FileManager.default.contents(atPath: file))
        #expect(stored == data)
    }

    @Test("refusals: no or a wrong device token, an unsafe blob name, a forged SAS, an unknown notification")
    func refusals() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let endpoints = fixture.endpoints
        let token = SASToken.generate(
            for: .device(hubHost: fixture.hubHost, deviceId: "dev1"),
            key: try SymmetricKey(base64: EmulatorFixture.deviceKey),
            expiry: UnixTime.now() + 600
        ).secretValue
        let base = "https://localhost:\(endpoints.service.port)/devices/dev1/files"
        func post(_ url: String, _ body: String, token: String?) async throws -> (status: Int, text: String) {
            var arguments = [
                "-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", "POST", "--cacert",
                endpoints.caCertificatePath, "-H", "Content-Type: application/json", "--data-binary", body, url,
            ]
            if let token { arguments += ["-H", "Authorization: \(token)"] }
            let result = try await PeerProcess.complete("/usr/bin/curl", arguments, timeout: .seconds(60))
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }
        #expect(try await post(base + "?api-version=2021-04-12", #"{"blobName":"a"}"#, token: nil).status == 401)
        let forgedToken = token.replacingOccurrences(of: "sig=", with: "sig=AAAA")
        #expect(
            try await post(base + "?api-version=2021-04-12", #"{"blobName":"a"}"#, token: forgedToken).status == 401
        )
        for name in ["../../etc/passwd", "/abs", "a/../b", "", "a\\\\b"] {
            let refused = try await post(
                base + "?api-version=2021-04-12",
                JSONValue.object(["blobName": .string(name)]).jsonText,
                token: token
            )
            #expect(refused.status == 400, "\(name)")
        }
        let granted = try await post(base + "?api-version=2021-04-12", #"{"blobName":"ok.txt"}"#, token: token)
        #expect(granted.status == 200)
        let grant = try JSONValue(parsing: granted.text)
        let host = try #require(grant["hostName"]?.stringValue)
        let sas = try #require(grant["sasToken"]?.stringValue)
        let blobURL = "https://\(host)/uploads/dev1/ok.txt"
        func put(_ query: String) async throws -> Int {
            let result = try await PeerProcess.complete(
                "/usr/bin/curl",
                [
                    "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--cacert",
                    endpoints.caCertificatePath,
                    "-H", "x-ms-blob-type: BlockBlob", "--data-binary", "hello", blobURL + query,
                ],
                timeout: .seconds(60)
            )
            return Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
        #expect(try await put("?sv=2018-03-28&sr=b&sig=forged&sp=rw") == 403)
        #expect(try await put("") == 403)
        #expect(try await put(sas) == 201)
        let unknown = try await post(
            base + "/notifications?api-version=2021-04-12",
            #"{"correlationId":"nope","isSuccess":true,"statusCode":200,"statusDescription":"x"}"#,
            token: token
        )
        #expect(unknown.status == 400)
        let correlationId = try #require(grant["correlationId"]?.stringValue)
        let notified = try await post(
            base + "/notifications?api-version=2021-04-12",
            #"{"correlationId":"\#(correlationId)","isSuccess":false,"statusCode":500,"statusDescription":"gave up"}"#,
            token: token
        )
        #expect(notified.status == 204)
        let record = try #require(await fixture.emulator.fileUploads().first { $0.correlationId == correlationId })
        #expect(record.size == 5 && record.isSuccess == false && record.statusCode == 500)
    }
}
