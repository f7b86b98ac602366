public import AzureIoTCore
public import Foundation

/// A device-to-cloud message as the emulated hub received it.
public struct ReceivedTelemetry: Sendable {
    /// The protocol it arrived on.
    public enum Transport: String, Sendable, Codable {
        /// MQTT 3.1.1 over TLS.
        case mqtt
        /// AMQP 1.0 over TLS.
        case amqp
    }

    /// The sending device.
    public var deviceId: String
    /// The sending module, if a module sent it.
    public var moduleId: String?
    /// The protocol.
    public var transport: Transport
    /// Whether the protocol ran in a WebSocket (the emulator's WebSocket port).
    public var overWebSockets = false
    /// The body bytes.
    public var body: [UInt8]
    /// `$.ct` / AMQP `content-type`.
    public var contentType: String?
    /// `$.ce` / AMQP `content-encoding`.
    public var contentEncoding: String?
    /// `$.mid` / AMQP `message-id`.
    public var messageId: String?
    /// `$.cid` / AMQP `correlation-id`.
    public var correlationId: String?
    /// `$.uid` / AMQP `user-id`.
    public var userId: String?
    /// Other system properties (`$.ctime`, `$.exp`, `$.sub`, …) keyed without the `$.` prefix.
    public var systemProperties: [String: String]
    /// Application (custom) properties; a key sent without `=` has an empty value.
    public var properties: [String: String]
    /// When the hub received it.
    public var receivedAt: Date

    /// The body as UTF-8 text.
    public var bodyText: String { String(decoding: self.body, as: UTF8.self) }
}

/// The life of a cloud-to-device message in the emulated hub.
public enum CloudToDeviceState: String, Sendable, Codable {
    /// Waiting for the device.
    case queued
    /// Sent, not yet settled.
    case delivered
    /// The device completed it (MQTT PUBACK, AMQP accepted).
    case completed
    /// The device rejected it (AMQP rejected); it is dead-lettered.
    case rejected
    /// The device abandoned it (AMQP released); it goes back to the queue.
    case abandoned
    /// It outlived its expiry (`absolute-expiry-time`, or the hub's default time to live) before the device
    /// completed it.
    case expired
    /// It was delivered as many times as the hub allows (10) without being completed.
    case deadLettered
}

/// A cloud-to-device message the test sent, with where it stands.
public struct CloudToDeviceRecord: Sendable {
    /// The id the emulator gave it (`message-id` / `$.mid`).
    public var messageId: String
    /// The target device.
    public var deviceId: String
    /// The body.
    public var body: [UInt8]
    /// Custom properties.
    public var properties: [String: String]
    /// Where it stands.
    public var state: CloudToDeviceState
    /// How many times it was delivered.
    public var deliveryCount: Int
    /// `correlation-id` / `$.cid`, when the sender set one.
    public var correlationId: String?
    /// `content-type` / `$.ct`.
    public var contentType: String?
    /// `content-encoding` / `$.ce`.
    public var contentEncoding: String?
    /// When it expires (`absolute-expiry-time` / `$.exp`).
    public var expiresAt: Date?
    /// The feedback the sender asked for (`iothub-ack`: `none`, `positive`, `negative` or `full`).
    public var acknowledgement: String?
    /// When the hub queued it.
    public var enqueuedAt = Date()
}

/// IoT Hub's feedback on a cloud-to-device message that asked for it (`iothub-ack`), as the service reads it from
/// `/messages/serviceBound/feedback`.
public struct CloudToDeviceFeedback: Sendable, Equatable {
    /// IoT Hub's status codes.
    public enum Status: Int, Sendable {
        /// The device completed the message.
        case success = 0
        /// The message expired first.
        case expired = 1
        /// It was delivered too many times.
        case deliveryCountExceeded = 2
        /// The device rejected it.
        case rejected = 3
        /// The service purged the queue.
        case purged = 4

        /// The description IoT Hub writes beside the code.
        public var description: String {
            switch self {
            case .success: "Success"
            case .expired: "Message expired"
            case .deliveryCountExceeded: "Message delivery count exceeded"
            case .rejected: "Message rejected"
            case .purged: "Message purged"
            }
        }
    }

    /// The message's id.
    public var originalMessageId: String
    /// The device.
    public var deviceId: String
    /// The device's generation id.
    public var deviceGenerationId: String
    /// What happened.
    public var status: Status
    /// When it happened.
    public var enqueuedTime: Date

    /// The record as IoT Hub writes it in a feedback message.
    var json: JSONValue {
        let name = String(describing: self.status)
        return [
            "originalMessageId": .string(self.originalMessageId),
            "deviceGenerationId": .string(self.deviceGenerationId),
            "deviceId": .string(self.deviceId),
            "enqueuedTimeUtc": .string(ProvisioningService.timestamp(self.enqueuedTime)),
            "statusCode": .string(name.prefix(1).uppercased() + name.dropFirst()),
            "description": .string(self.status.description),
        ]
    }
}

/// A device's answer to a direct method.
public struct MethodResponse: Sendable, Equatable {
    /// The status the device returned.
    public var status: Int
    /// The payload (JSON) the device returned.
    public var payload: [UInt8]

    /// The payload as text.
    public var payloadText: String { String(decoding: self.payload, as: UTF8.self) }
}

/// A registration DPS handled.
public struct ProvisioningRecord: Sendable {
    /// How the device proved its identity.
    public enum Attestation: String, Sendable, Codable {
        /// SAS with the enrollment's key.
        case symmetricKey
        /// A TLS client certificate.
        case x509
    }

    /// The registration id.
    public var registrationId: String
    /// The device id assigned.
    public var deviceId: String
    /// The enrollment group's name, or `nil` for an individual enrollment.
    public var enrollmentGroup: String?
    /// How the device attested.
    public var attestation: Attestation
    /// The final status (`assigned`, `failed`, `disabled`).
    public var status: String
    /// The custom payload the device sent, if any.
    public var payload: JSONValue?
}

/// A twin as the emulated hub stores it.
public struct TwinRecord: Sendable, Equatable {
    /// Desired properties (without `$version`).
    public var desired: JSONValue
    /// The desired version.
    public var desiredVersion: Int
    /// Reported properties (without `$version`).
    public var reported: JSONValue
    /// The reported version.
    public var reportedVersion: Int

    /// The twin document as IoT Hub sends it to devices: `{"desired":{…,"$version":n},"reported":{…,"$version":m}}`.
    var deviceDocument: JSONValue {
        var desired = self.desired.objectValue
        desired["$version"] = .number(JSONNumber(self.desiredVersion))
        var reported = self.reported.objectValue
        reported["$version"] = .number(JSONNumber(self.reportedVersion))
        return .object(["desired": .object(desired), "reported": .object(reported)])
    }
}

/// What one identity did, counted by the emulator, so that tests wait for events instead of sleeping.
public struct IdentityActivity: Sendable, Equatable {
    /// SAS tokens accepted for the identity: MQTT CONNECT, AMQP SASL PLAIN, CBS put-token (first and renewals).
    public var tokenAuthentications = 0
    /// Connections that became the identity's connection (MQTT CONNECT accepted, AMQP link attached).
    public var connections = 0
    /// AMQP heartbeat (empty) frames received on connections the identity is authorized on.
    public var heartbeatsReceived = 0
    /// AMQP heartbeat frames the emulator sent on those connections (at half the client's idle time-out).
    public var heartbeatsSent = 0

    /// No activity.
    public init() {}
}

extension Date {
    /// Milliseconds since 1970 as AMQP timestamps carry them, clamped to what `Int64` holds (a peer's
    /// `absolute-expiry-time` can be any 64-bit value, and its round trip through `Double` may not fit back).
    var unixMilliseconds: Int64 {
        let value = (self.timeIntervalSince1970 * 1000).rounded()
        guard value.isFinite else { return 0 }
        if value >= 9.2e18 { return 9_200_000_000_000_000_000 }
        if value <= -9.2e18 { return -9_200_000_000_000_000_000 }
        return Int64(value)
    }

    /// The date of AMQP milliseconds, limited to years 1970…9999 so that it can be formatted and stored.
    init(unixMilliseconds: Int64) {
        let seconds = Double(unixMilliseconds) / 1000
        self.init(timeIntervalSince1970: min(max(seconds, 0), 253_402_300_799))
    }
}
