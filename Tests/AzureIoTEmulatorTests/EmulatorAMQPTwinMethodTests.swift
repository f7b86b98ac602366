import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation
import HubAMQP
import Testing

/// Device twin and direct methods over AMQP (the `…/twin` and `…/methods/devicebound` links), against the emulator:
/// for one device over SASL PLAIN and for several identities (devices and a module) on one CBS gateway connection.
@Suite("Emulator: twin and direct methods over AMQP")
struct EmulatorAMQPTwinMethodTests {
    @Test(
        "twin over AMQP: GET with versions, reported PATCH returns the new version, desired patches are pushed after the subscription"
    )
    func twin() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.amqp()
        try await client.connect()
        let twin = try await client.twin()
        #expect(twin.desiredVersion == 1 && twin.reportedVersion == 1)
        #expect(String(decoding: twin.json, as: UTF8.self).contains(#""interval":10"#))
        #expect(try await client.updateReportedProperties(Array(#"{"fw":"1.2"}"#.utf8)) == 2)
        #expect(try await client.updateReportedProperties(Array(#"{"fw":null,"battery":90}"#.utf8)) == 3)
        #expect(try await fixture.emulator.twin(deviceId: "dev1").reported == .object(["battery": .number(90)]))
        // Not an object: the hub answers 400, which the client reports with the status.
        let refused = await #expect(throws: HubAMQPError.self) {
            try await client.updateReportedProperties(Array("[1]".utf8))
        }
        #expect(refused?.code == .twinRequestFailed && refused?.status == 400)

        // Before the subscription the hub pushes nothing.
        try await fixture.emulator.updateDesiredProperties(deviceId: "dev1", patch: .object(["early": .bool(true)]))
        try await client.subscribe(to: [.desiredPropertyPatches])
        var patches = client.desiredPropertyPatches.makeAsyncIterator()
        #expect(
            try await fixture.emulator.updateDesiredProperties(
                deviceId: "dev1",
                patch: .object(["interval": .number(30)])
            ) == 3
        )
        let patch = try #require(await patches.next())
        #expect(patch.version == 3 && !patch.isFullDocument)
        #expect((try? JSONValue(parsing: patch.json)) == .object(["interval": .number(30), "$version": .number(3)]))
        #expect(try await client.twin().desiredVersion == 3)
        await client.close()
    }

    @Test("direct methods over AMQP: the device's status and payload come back; a device not subscribed is refused")
    func methods() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.amqp()
        try await client.connect()
        let unsubscribed = await #expect(throws: EmulatorError.self) {
            _ = try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "reboot", timeout: .seconds(30))
        }
        #expect(unsubscribed?.code == .deviceNotConnected)
        try await client.subscribe(to: [.methodRequests])
        let responder = Task {
            for await request in client.methodRequests {
                try await request.respond(status: 201, payload: Array(#"{"echo":"\#(request.name)"}"#.utf8))
                return request.payload
            }
            return []
        }
        let response = try await fixture.emulator.invokeMethod(
            deviceId: "dev1",
            name: "reboot",
            payload: .object(["delay": .number(5)]),
            timeout: .seconds(30)
        )
        #expect(response.status == 201)
        #expect(String(decoding: response.payload, as: UTF8.self) == #"{"echo":"reboot"}"#)
        #expect((try? JSONValue(parsing: try await responder.value)) == .object(["delay": .number(5)]))
        await client.close()
    }

    @Test(
        "twin and methods reconnect: after the hub drops the connection the links come back and the subscription is made again"
    )
    func afterReconnect() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let client = try fixture.amqp()
        try await client.connect()
        try await client.subscribe(to: [.desiredPropertyPatches, .methodRequests])
        await fixture.emulator.dropConnection(deviceId: "dev1")
        // A twin call made while the client reconnects waits for the connection instead of failing.
        #expect(try await client.updateReportedProperties(Array(#"{"after":"drop"}"#.utf8)) == 2)
        var patches = client.desiredPropertyPatches.makeAsyncIterator()
        try await fixture.emulator.updateDesiredProperties(deviceId: "dev1", patch: .object(["again": .bool(true)]))
        #expect(try #require(await patches.next()).version == 2)
        let responder = Task {
            for await request in client.methodRequests {
                try await request.respond(status: 200)
                return
            }
        }
        #expect(
            try await fixture.emulator.invokeMethod(deviceId: "dev1", name: "ping", timeout: .seconds(30)).status == 200
        )
        try await responder.value
        await client.close()
    }

    @Test("gateway: each identity on one CBS connection has its own twin, desired patches and method calls")
    func gatewayIdentities() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let gateway = EmulatorGatewayTests.gateway(fixture)
        try await gateway.connect()
        let device = try await gateway.addDevice(
            deviceId: "dev2",
            tokenSource: try EmulatorGatewayTests.credential(EmulatorFixture.secondDeviceKey)
        )
        let module = try await gateway.addDevice(
            deviceId: "dev1",
            moduleId: "mod1",
            tokenSource: try EmulatorGatewayTests.credential(EmulatorFixture.moduleKey)
        )
        #expect(try await device.updateReportedProperties(Array(#"{"who":"dev2"}"#.utf8)) == 2)
        #expect(try await module.updateReportedProperties(Array(#"{"who":"mod1"}"#.utf8)) == 2)
        #expect(try await fixture.emulator.twin(deviceId: "dev2").reported == .object(["who": .string("dev2")]))
        #expect(
            try await fixture.emulator.twin(deviceId: "dev1", moduleId: "mod1").reported
                == .object(["who": .string("mod1")])
        )
        try await module.subscribe(to: [.desiredPropertyPatches, .methodRequests])
        try await device.subscribe(to: [.methodRequests])
        var modulePatches = module.desiredPropertyPatches.makeAsyncIterator()
        try await fixture.emulator.updateDesiredProperties(
            deviceId: "dev1",
            moduleId: "mod1",
            patch: .object(["rate": .number(2)])
        )
        #expect(try #require(await modulePatches.next()).version == 2)
        let answers = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (identity, status) in [(device, 200), (module, 202)] {
                    group.addTask {
                        for await request in identity.methodRequests {
                            try await request.respond(
                                status: status,
                                payload: Array(#"{"by":"\#(identity.moduleId ?? identity.deviceId)"}"#.utf8)
                            )
                            return
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let toDevice = try await fixture.emulator.invokeMethod(deviceId: "dev2", name: "a", timeout: .seconds(30))
        let toModule = try await fixture.emulator.invokeMethod(
            deviceId: "dev1",
            moduleId: "mod1",
            name: "b",
            timeout: .seconds(30)
        )
        #expect(toDevice.status == 200 && String(decoding: toDevice.payload, as: UTF8.self) == #"{"by":"dev2"}"#)
        #expect(toModule.status == 202 && String(decoding: toModule.payload, as: UTF8.self) == #"{"by":"mod1"}"#)
        try await answers.value
        await gateway.close()
    }
}
