import AzureIoTCore
import AzureIoTTestSupport
import Foundation
import HubMQTT
import Testing

@Suite("IoT Hub MQTT client: reconnect and modules", .serialized)
struct HubMQTTReconnectTests {
    @Test("after a reconnect the client re-reads the twin and reports a desired change made while offline")
    func twinReconciliation() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        var configuration = try await HubMQTTClientTests.configuration(
            broker,
            port: broker.anyPasswordPort,
            authentication: try HubMQTTClientTests.anyPassword()
        )
        configuration.reconnectMinimumDelay = .seconds(1)
        let client = try HubMQTTClient(configuration: configuration)
        try await client.connect()
        var patches = client.desiredPropertyPatches.makeAsyncIterator()

        broker.kill()
        try await broker.start()
        let hubSide = try await HubSideSubscriber(broker: broker, filters: ["$iothub/twin/GET/#"])
        let get = try #require(
            await hubSide.waitForLine(timeout: .seconds(15)) { $0.hasPrefix("$iothub/twin/GET/?$rid=") }
        )
        let rid = get.dropFirst("$iothub/twin/GET/?$rid=".count).prefix { $0 != "|" }
        try await broker.hubPublish(
            topic: "$iothub/twin/res/200/?$rid=\(rid)",
            payload: #"{"desired":{"interval":30,"$version":9},"reported":{"$version":4}}"#
        )
        let patch = try #require(await patches.next())
        #expect(patch.isFullDocument)
        #expect(patch.version == 9)
        let object = try JSONSerialization.jsonObject(with: Data(patch.json)) as? [String: Any]
        #expect(object?["interval"] as? Int == 30)
        await client.disconnect()
    }

    @Test("a module identity uses the module's client id, user name, SAS resource and telemetry topic")
    func module() async throws {
        let pki = try await TestPKI.shared()
        let broker = try await MosquittoBroker(pki: pki)
        let subscriber = try await HubSideSubscriber(broker: broker, filters: ["devices/#"])
        var configuration = try await HubMQTTClientTests.configuration(
            broker,
            port: broker.anyPasswordPort,
            authentication: try HubMQTTClientTests.anyPassword()
        )
        configuration.identity = HubMQTTIdentity(
            hubHost: HubMQTTClientTests.hub,
            deviceId: "dev1",
            moduleId: "filter",
            modelId: "dtmi:com:example:Thermostat;1"
        )
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            try await client.send(TelemetryMessage(body: Array("m".utf8), properties: [("k", "v")]))
        }
        #expect(await subscriber.waitForLine { $0 == "devices/dev1/modules/filter/messages/events/k=v|m" } != nil)
        #expect(
            await broker.waitForLog(
                containing:
                    "as dev1/filter (p2, c0, k60, u'test-hub.azure-devices.net/dev1/filter/?api-version=2021-04-12&DeviceClientType=azure-iot-swift%2F0.1.0&model-id=dtmi%3Acom%3Aexample%3AThermostat%3B1')"
            )
        )
        #expect(
            configuration.identity.sasResource.encoded
                == "test-hub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2Ffilter"
        )
    }
}
