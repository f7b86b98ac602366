import AzureIoTCore
import AzureIoTDevice
import Foundation
import HubAMQP
import Testing

@testable import AzureIoTEmulator

/// The Event Hub-compatible endpoint's log, without sockets: partitioning, numbering, retention by count and age,
/// starting positions and the selector filters Azure's SDKs write.
@Suite("Event log")
struct EventLogTests {
    static func telemetry(_ deviceId: String, _ text: String) -> ReceivedTelemetry {
        ReceivedTelemetry(
            deviceId: deviceId,
            transport: .mqtt,
            body: Array(text.utf8),
            systemProperties: [:],
            properties: [:],
            receivedAt: Date()
        )
    }

    @Test("a device stays in one partition; sequence numbers and offsets grow per partition")
    func numbering() {
        var log = EventLog(partitionCount: 4, retainedEventsPerPartition: 100, retention: 3_600)
        let partition = log.append(Self.telemetry("dev-a", "1"))
        #expect(log.append(Self.telemetry("dev-a", "22")) == partition)
        let events = log.events(in: partition, from: 0, limit: 10)
        #expect(events.map(\.sequenceNumber) == [0, 1])
        #expect(events[1].offset > events[0].offset)
        // Another device may land elsewhere; spread over many devices, every partition is used.
        let used = Set((0..<64).map { log.partition(forDevice: "device-\($0)") })
        #expect(used == [0, 1, 2, 3])
    }

    @Test("retention drops the oldest past the count and past the age; numbering goes on")
    func retention() {
        var log = EventLog(partitionCount: 1, retainedEventsPerPartition: 3, retention: 60)
        let start = Date(timeIntervalSince1970: 1_000_000)
        for index in 0..<5 { log.append(Self.telemetry("d", "\(index)"), now: start + Double(index)) }
        #expect(log.partitions[0].map(\.sequenceNumber) == [2, 3, 4])
        let properties = log.properties(of: 0)
        #expect(properties.beginSequenceNumber == 2 && properties.lastSequenceNumber == 4 && !properties.isEmpty)
        // Two minutes later everything is past its age but the one appended then.
        log.append(Self.telemetry("d", "late"), now: start + 120)
        #expect(log.partitions[0].map(\.sequenceNumber) == [5])
    }

    @Test("starting positions: offset, sequence number, enqueued time (inclusive or not), and @latest")
    func positions() {
        var log = EventLog(partitionCount: 1, retainedEventsPerPartition: 100, retention: 3_600)
        let start = Date(timeIntervalSince1970: 2_000_000)
        for index in 0..<4 { log.append(Self.telemetry("d", "\(index)"), now: start + Double(index)) }
        let offsets = log.partitions[0].map(\.offset)
        #expect(log.firstSequenceNumber(in: 0, from: .offset(-1, inclusive: false)) == 0)
        #expect(log.firstSequenceNumber(in: 0, from: .offset(offsets[1], inclusive: false)) == 2)
        #expect(log.firstSequenceNumber(in: 0, from: .offset(offsets[1], inclusive: true)) == 1)
        #expect(log.firstSequenceNumber(in: 0, from: .sequenceNumber(2, inclusive: false)) == 3)
        let milliseconds = Int64((start + 1).timeIntervalSince1970 * 1000)
        #expect(log.firstSequenceNumber(in: 0, from: .enqueuedTime(milliseconds: milliseconds, inclusive: false)) == 2)
        #expect(log.firstSequenceNumber(in: 0, from: .enqueuedTime(milliseconds: milliseconds, inclusive: true)) == 1)
        #expect(log.firstSequenceNumber(in: 0, from: .latest) == 4)
    }

    @Test(
        "selector filters as Azure's Event Hubs SDKs write them; anything else is not a position",
        arguments: [
            ("amqp.annotation.x-opt-offset > '-1'", EventPosition.offset(-1, inclusive: false)),
            ("amqp.annotation.x-opt-offset >= '42'", .offset(42, inclusive: true)),
            ("amqp.annotation.x-opt-offset > '@latest'", .latest),
            ("amqp.annotation.x-opt-sequence-number > '7'", .sequenceNumber(7, inclusive: false)),
            (
                "amqp.annotation.x-opt-enqueued-time >= '1700000000000'",
                .enqueuedTime(milliseconds: 1_700_000_000_000, inclusive: true)
            ),
        ]
    )
    func selectors(_ text: String, _ expected: EventPosition) {
        #expect(EventPosition(selector: text) == expected)
    }

    @Test(
        "malformed selectors",
        arguments: [
            "", "x > '1'", "amqp.annotation.x-opt-offset < '1'", "amqp.annotation.x-opt-offset > 1",
            "amqp.annotation.x-opt-offset > 'abc'", "amqp.annotation.x-opt-sequence-number > '99999999999999999999'",
        ]
    )
    func malformed(_ text: String) {
        #expect(EventPosition(selector: text) == nil)
    }
}

/// The Swift API's telemetry list is bounded too, so an emulator left running does not grow without end.
@Suite("Emulator: retained telemetry")
struct RetainedTelemetryTests {
    @Test("past maximumRetainedTelemetry the oldest messages go; the newest stay; 0 is refused")
    func bounded() async throws {
        var configuration = try await EmulatorFixture.configuration()
        configuration.limits.maximumRetainedTelemetry = 10
        let emulator = try await IoTEmulator.start(configuration: configuration)
        defer { Task { await emulator.shutdown() } }
        let device = try emulator.endpoints.deviceConfiguration("dev1", key: EmulatorFixture.deviceKey)
        try await DeviceClient.withConnection(configuration: device) { client in
            for index in 0..<25 { try await client.send(TelemetryMessage(text: "m\(index)")) }
        }
        let kept = await emulator.telemetry().map(\.bodyText)
        #expect(kept.count <= 10 && kept.last == "m24" && !kept.contains("m0"), "\(kept)")
        configuration.limits.maximumRetainedTelemetry = 0
        await #expect(throws: EmulatorError.self) { _ = try await IoTEmulator.start(configuration: configuration) }
    }
}

/// Peer-supplied AMQP timestamps (an `absolute-expiry-time` can be any 64-bit value) never trap on their way
/// through `Date` and back.
@Suite("AMQP timestamps")
struct TimestampTests {
    @Test("extremes clamp; ordinary values round-trip", arguments: [Int64.max, Int64.min, 0, -1, 1_796_000_000_123])
    func roundTrip(_ milliseconds: Int64) {
        let date = Date(unixMilliseconds: milliseconds)
        let back = date.unixMilliseconds
        #expect(back >= 0 && back <= 253_402_300_799_000)
        if (0...253_402_300_799_000).contains(milliseconds) { #expect(back == milliseconds) }
        #expect(!ProvisioningService.timestamp(date).isEmpty)
    }

    @Test("dates beyond Int64 milliseconds, and not-a-number, do not trap")
    func beyond() {
        #expect(Date(timeIntervalSince1970: 1e300).unixMilliseconds == 9_200_000_000_000_000_000)
        #expect(Date(timeIntervalSince1970: -1e300).unixMilliseconds == -9_200_000_000_000_000_000)
        #expect(Date(timeIntervalSince1970: .nan).unixMilliseconds == 0)
    }
}

/// The service side with extreme expiries, end to end: nothing traps, a far expiry is delivered over MQTT and AMQP,
/// a past one expires.
@Suite("Emulator: extreme cloud-to-device expiries")
struct ExtremeExpiryTests {
    @Test("absolute-expiry-time Int64.max reaches the device over MQTT and AMQP; Int64.min expires at once")
    func extremes() async throws {
        let fixture = try await EmulatorFixture.start()
        defer { Task { await fixture.emulator.shutdown() } }
        let endpoints = fixture.endpoints
        let service = HubServiceConnection(
            settings: .init(
                host: "localhost",
                port: endpoints.amqp.port,
                tokenResource: endpoints.hubHost,
                hubName: endpoints.hubName,
                keyName: "service",
                key: try SymmetricKey(
                    base64: try #require(endpoints.sharedAccessPolicies.first { $0.keyName == "service" }).primaryKey
                ),
                trustRoots: fixture.trust,
                operationTimeout: .seconds(30)
            )
        )
        try await service.open()
        for (device, transport) in [("dev1", DeviceClientConfiguration.Transport.mqtt), ("dev2", .amqp)] {
            let key = device == "dev1" ? EmulatorFixture.deviceKey : EmulatorFixture.secondDeviceKey
            let client = try DeviceClient(
                configuration: try endpoints.deviceConfiguration(device, key: key, transport: transport)
            )
            try await client.subscribe(to: [.cloudToDeviceMessages])
            try await client.connect()
            var messages = client.cloudToDeviceMessages.makeAsyncIterator()
            for (id, expiry) in [("past-\(device)", Int64.min), ("far-\(device)", Int64.max)] {
                var message = AMQPMessage(data: Array(id.utf8))
                message.messageId = .string(id)
                message.to = "/devices/\(device)/messages/devicebound"
                message.absoluteExpiryTime = expiry
                try await service.sendCloudToDevice(message)
            }
            let received = try #require(await messages.next())
            #expect(received.messageId == "far-\(device)", "\(transport)")
            await client.disconnect()
            _ = try await fixture.emulator.waitForCloudToDevice(messageId: "past-\(device)", state: .expired)
        }
        await service.close()
    }
}
