import HubMQTT
import Testing

@testable import AzureIoTEmulator

/// The emulator's CONNECT user-name and telemetry-topic rules, without sockets: every form IoT Hub accepts is
/// accepted, and what it refuses is refused (`MQTTUsername`, `DevicePublishRoute`).
@Suite("MQTT CONNECT and topic rules")
struct MQTTConnectRulesTests {
    static let accepted: [(username: String, device: String, module: String?, apiVersion: String)] = [
        // The documented form (the docs' 2021-04-12, the C SDK's 2020-09-30, the Python SDK's 2019-10-01).
        ("hub.azure-devices.net/dev1/?api-version=2021-04-12", "dev1", nil, "2021-04-12"),
        (
            "hub.azure-devices.net/dev1/?api-version=2020-09-30&DeviceClientType=iothubclient%2f1.8.0%20(native%3b%20freertos%3b%20esp%20platform)",
            "dev1", nil, "2020-09-30"
        ),
        (
            "hub.azure-devices.net/dev1/?api-version=2019-10-01&DeviceClientType=py-azure-iot-device%2F2.14.0", "dev1",
            nil, "2019-10-01"
        ),
        (
            "myiothub.azure-devices.net/my_device/?api-version=2020-09-30&DeviceClientType=azsdk-c%2F1.0.0&model-id=dtmi%3AYOUR_COMPANY_NAME_HERE%3Asample_device%3B1",
            "my_device", nil, "2020-09-30"
        ),
        // The write-ups' form without `?`: the mosquitto bridge (2019-03-31) and Node-RED (2016-11-14).
        ("hub.azure-devices.net/dev1/api-version=2019-03-31", "dev1", nil, "2019-03-31"),
        ("sdbiothub1.azure-devices.net/nodeRedTest/api-version=2016-11-14", "nodeRedTest", nil, "2016-11-14"),
        (
            "hub.azure-devices.net/dev1/api-version=2018-06-30&DeviceClientType=customDeviceClient1", "dev1", nil,
            "2018-06-30"
        ),
        // C's `ClientVersion`, a later and a preview version.
        ("hub.azure-devices.net/dev1/?api-version=2021-06-30&ClientVersion=1.2.3", "dev1", nil, "2021-06-30"),
        ("hub.azure-devices.net/dev1/?api-version=2025-08-01-preview", "dev1", nil, "2025-08-01-preview"),
        // Modules, in both forms.
        ("hub.azure-devices.net/dev1/mod1/?api-version=2021-04-12", "dev1", "mod1", "2021-04-12"),
        ("hub.azure-devices.net/dev1/mod1/api-version=2017-06-30&DeviceClientType=x", "dev1", "mod1", "2017-06-30"),
        // A property value sent with a raw slash still belongs to the properties.
        ("hub.azure-devices.net/dev1/api-version=2019-03-31&DeviceClientType=node/1.0", "dev1", nil, "2019-03-31"),
    ]

    @Test("every user-name form of the SDKs and the write-ups parses to the hub, identity and api-version")
    func acceptedForms() throws {
        for form in Self.accepted {
            let username = try MQTTUsername(parsing: form.username)
            #expect(username.identity == IdentityName(deviceId: form.device, moduleId: form.module), "\(form.username)")
            #expect(username.apiVersion == form.apiVersion, "\(form.username)")
        }
        let decoded = try MQTTUsername(parsing: Self.accepted[3].username)
        #expect(decoded.hubHost == "myiothub.azure-devices.net")
        #expect(decoded.properties["model-id"] == "dtmi:YOUR_COMPANY_NAME_HERE:sample_device;1")
        #expect(decoded.properties["DeviceClientType"] == "azsdk-c/1.0.0")
    }

    @Test("user names IoT Hub refuses are refused, each with its reason")
    func refusedForms() {
        let refused: [(String, MQTTUsername.ParseError)] = [
            ("hub.azure-devices.net/dev1", .notHubDeviceProperties),
            ("hub.azure-devices.net/dev1/", .notHubDeviceProperties),
            ("hub.azure-devices.net/dev1/?", .missingAPIVersion),
            ("hub.azure-devices.net/dev1/?DeviceClientType=x", .missingAPIVersion),
            ("hub.azure-devices.net/dev1/?api-version=", .missingAPIVersion),
            ("hub.azure-devices.net/dev1?api-version=2021-04-12", .notHubDeviceProperties),
            ("hub.azure-devices.net//?api-version=2021-04-12", .notHubDeviceProperties),
            ("/dev1/?api-version=2021-04-12", .notHubDeviceProperties),
            ("hub.azure-devices.net/dev1/mod1/extra/?api-version=2021-04-12", .notHubDeviceProperties),
            ("api-version=2021-04-12", .notHubDeviceProperties),
            ("hub.azure-devices.net/dev1/?api-version=latest", .malformedAPIVersion("latest")),
            ("hub.azure-devices.net/dev1/?api-version=2021-4-12", .malformedAPIVersion("2021-4-12")),
            ("hub.azure-devices.net/dev1/?api-version=2021-04-12-", .malformedAPIVersion("2021-04-12-")),
            ("hub.azure-devices.net/dev1/?api-version=2021-04-12&DeviceClientType=%G1", .malformedEscape),
            ("", .notHubDeviceProperties),
        ]
        for (text, reason) in refused {
            #expect(throws: reason, "\(text)") { try MQTTUsername(parsing: text) }
        }
    }

    @Test("telemetry topics: with and without the trailing slash, `$.` and `%24.` keys, trailing slashes ignored")
    func telemetryTopics() throws {
        let device = IdentityName(deviceId: "dev1")
        let module = IdentityName(deviceId: "dev1", moduleId: "mod1")
        let cases: [(String, IdentityName, Substring?)] = [
            ("devices/dev1/messages/events", device, ""),
            ("devices/dev1/messages/events/", device, ""),
            (
                "devices/dev1/messages/events/$.ct=application%2Fjson&$.ce=utf-8", device,
                "$.ct=application%2Fjson&$.ce=utf-8"
            ),
            (
                "devices/dev1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8/", device,
                "%24.ct=application%2Fjson&%24.ce=utf-8"
            ),
            ("devices/dev1/modules/mod1/messages/events", module, ""),
            ("devices/dev1/modules/mod1/messages/events/a=b", module, "a=b"),
            ("devices/dev1/messages/eventsx", device, nil),
            ("devices/dev2/messages/events/", device, nil),
            ("devices/dev1/messages/events", module, nil),
            ("devices/dev1/messages", device, nil),
        ]
        for (topic, identity, bag) in cases {
            let route = DevicePublishRoute(topic: topic, identity: identity)
            #expect(route == bag.map { .telemetry(propertyBag: $0) }, "\(topic)")
        }
        for text in ["$.ct=application%2Fjson&$.ce=utf-8", "%24.ct=application%2Fjson&%24.ce=utf-8"] {
            let bag = try PropertyBag(parsing: text[...])
            #expect(bag["$.ct"] == "application/json" && bag["$.ce"] == "utf-8")
        }
    }

    @Test(
        "dated api-versions",
        arguments: [
            "2016-11-14", "2018-06-30", "2019-03-31", "2019-10-01", "2020-09-30", "2021-04-12", "2026-11-02-preview",
        ]
    )
    func datedVersions(_ version: String) {
        #expect(MQTTUsername.isDatedVersion(version))
    }
}
