import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import HubMQTT
import Testing

/// The client against a broker that misbehaves (`Tests/Peers/mqtt_hostile_broker.py`, Python's ssl module only).
@Suite("IoT Hub MQTT client against a hostile broker", .timeLimit(.minutes(2)))
struct HubMQTTHostileBrokerTests {
    static func broker(_ behaviour: String) async throws -> (PeerProcess, Int) {
        let pki = try await TestPKI.shared()
        var attempt = 0
        while true {
            let port = try PeerProcess.freePort()
            do {
                let peer = try await PeerProcess(
                    "/usr/bin/python3",
                    [
                        PeerProcess.peerScript("mqtt_hostile_broker.py"), String(port), pki.path("server.pem"),
                        pki.path("server.key"), behaviour,
                    ],
                    readyMarker: "READY"
                )
                return (peer, port)
            } catch  where attempt < 3 {
                attempt += 1
            }
        }
    }

    static func client(port: Int, operationTimeout: Duration) async throws -> HubMQTTClient {
        try HubMQTTClient(
            configuration: HubMQTTConfiguration(
                identity: HubMQTTIdentity(hubHost: "hostile-hub.azure-devices.net", deviceId: "dev1"),
                authentication: .sas(try SymmetricKeyCredential(base64Key: HubMQTTClientTests.key)),
                gatewayHostName: "localhost",
                port: port,
                trustRoots: .pemFile(try await TestPKI.shared().path("ca.pem")),
                operationTimeout: operationTimeout
            )
        )
    }

    @Test(
        "a broker that floods SUBACKs after CONNACK: send ends with timedOut at its deadline, the client stays on one connection and keeps serving its other work"
    )
    func subackFlood() async throws {
        let (broker, port) = try await Self.broker("suback-flood")
        defer { broker.stop() }
        let client = try await Self.client(port: port, operationTimeout: .seconds(3))
        try await client.connect()
        let clock = ContinuousClock()
        let start = clock.now
        await #expect(throws: HubMQTTError(.timedOut, "")) {
            try await client.send(TelemetryMessage(text: "never acknowledged"), timeout: .seconds(2))
        }
        let waited = clock.now - start
        #expect(waited >= .seconds(2) && waited < .seconds(15), "send took \(waited)")
        // The session's own work still runs between the flood's packets: a twin request times out on time too.
        let twinStart = clock.now
        await #expect(throws: HubMQTTError(.timedOut, "")) { _ = try await client.twin() }
        #expect(clock.now - twinStart < .seconds(15))
        #expect(await client.isConnected)
        #expect(await client.pendingMessageCount == 0)
        await client.disconnect()
        #expect(await broker.waitForOutput(containing: "CLOSED 1"))
        let connects = broker.output.components(separatedBy: "\n").filter { $0.hasPrefix("CONNECT ") }.count
        print("SUBACK flood: \(connects) connection(s); send timed out after \(waited)")
        #expect(connects == 1, "the flood is not a reason to reconnect: \(broker.output.suffix(400))")
    }

    @Test("a broker that never answers: twin and send honour a per-call time-out and task cancellation")
    func silentBroker() async throws {
        let (broker, port) = try await Self.broker("silent")
        defer { broker.stop() }
        let client = try await Self.client(port: port, operationTimeout: .seconds(60))
        try await client.connect()
        let clock = ContinuousClock()
        // A per-call time-out overrides the configuration's 60 s.
        var start = clock.now
        await #expect(throws: HubMQTTError(.timedOut, "")) { _ = try await client.twin(timeout: .milliseconds(500)) }
        await #expect(throws: HubMQTTError(.timedOut, "")) {
            _ = try await client.updateReportedProperties(Array("{}".utf8), timeout: .milliseconds(500))
        }
        #expect(clock.now - start < .seconds(20))
        // Cancelling the task ends each wait at once, with CancellationError.
        for operation in ["twin", "patch", "send"] {
            let task = Task {
                switch operation {
                case "twin": _ = try await client.twin()
                case "patch": _ = try await client.updateReportedProperties(Array(#"{"a":1}"#.utf8))
                default: try await client.send(TelemetryMessage(text: "never acknowledged"))
                }
            }
            // The request is out before the task is cancelled (the broker logs every PUBLISH it gets).
            let published = broker.output.components(separatedBy: "PUBLISH").count
            try await eventually("the \(operation) request at the broker") {
                broker.output.components(separatedBy: "PUBLISH").count > published
            }
            start = clock.now
            task.cancel()
            await #expect(throws: CancellationError.self, "\(operation)") { try await task.value }
            #expect(clock.now - start < .seconds(10), "\(operation) ended \(clock.now - start) after the cancellation")
        }
        #expect(await client.isConnected)
        await client.disconnect()
    }
}
