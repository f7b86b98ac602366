public import AzureIoTCore
import Foundation

/// The shared message types on AMQP, as the Azure C and .NET SDKs map them
/// (`../shared/reference/azure-iot-protocol.md` §4.5): ids, user id, content type and encoding and the expiry in the
/// AMQP properties; the creation time, the output name and the application's properties as application properties;
/// the Plug and Play component as the `dt-subject` message annotation.
extension TelemetryMessage {
    /// The AMQP message IoT Hub reads this telemetry from.
    public var amqpMessage: AMQPMessage {
        var message = AMQPMessage(data: self.body)
        message.messageId = self.messageId.map { .string($0) }
        message.correlationId = self.correlationId.map { .string($0) }
        message.userId = self.userId.map { Array($0.utf8) }
        message.contentType = self.contentType
        message.contentEncoding = self.contentEncoding
        message.absoluteExpiryTime = self.expiryTime.flatMap(Self.milliseconds)
        var properties: [(String, AMQPValue)] = []
        if let creationTime = self.creationTime {
            properties.append(("iothub-creation-time-utc", .string(creationTime)))
        }
        if let outputName = self.outputName { properties.append(("iothub-outputname", .string(outputName))) }
        properties += self.properties.map { ($0.0, .string($0.1)) }
        message.applicationProperties = properties
        if let component = self.componentName {
            message.messageAnnotations = [AMQPMapEntry(.symbol("dt-subject"), .string(component))]
        }
        return message
    }

    /// Milliseconds since 1970 of an ISO 8601 UTC time, with or without fractional seconds.
    static func milliseconds(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let plain = ISO8601DateFormatter()
        guard let date = formatter.date(from: text) ?? plain.date(from: text) else { return nil }
        return Int64((date.timeIntervalSince1970 * 1000).rounded())
    }
}

extension CloudToDeviceDelivery {
    /// The delivery as the transport-neutral message; settling either settles both.
    public var cloudToDeviceMessage: CloudToDeviceMessage {
        let message = self.message
        var body = message.data ?? []
        if message.data == nil, case .binary(let bytes)? = message.value { body = bytes }
        func text(_ value: AMQPValue?) -> String? { value.flatMap(AMQPTwinMessage.text) }
        func time(_ milliseconds: Int64?) -> String? {
            milliseconds.map { TelemetryMessage.iso8601(Date(timeIntervalSince1970: Double($0) / 1000)) }
        }
        let delivery = self
        return CloudToDeviceMessage(
            body: body,
            messageId: text(message.messageId),
            correlationId: text(message.correlationId),
            userId: message.userId.map { String(decoding: $0, as: UTF8.self) },
            to: message.to,
            contentType: message.contentType,
            contentEncoding: message.contentEncoding,
            expiryTime: time(message.absoluteExpiryTime),
            creationTime: time(message.creationTime),
            applicationProperties: message.applicationProperties.map { ($0.0, text($0.1) ?? "\($0.1)") },
            canRejectOrAbandon: true,
            settle: { outcome in
                switch outcome {
                case .complete: try await delivery.complete()
                case .reject: try await delivery.reject()
                case .abandon: try await delivery.abandon()
                }
            }
        )
    }
}
