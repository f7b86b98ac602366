package import Foundation

/// A device-to-cloud message: a body plus the system and application properties IoT Hub reads, whichever transport
/// carries it (over MQTT in the topic's property bag, over AMQP in the message's properties and application properties).
public struct TelemetryMessage: Sendable {
    /// IoT Hub's limit for one message, body and properties together.
    public static let maximumSize = 256 * 1024

    /// The message body (at most 256 KB with the property bag).
    public var body: [UInt8]
    /// `$.ct`: set it (e.g. `application/json`) so that routing queries can read the body.
    public var contentType: String?
    /// `$.ce`: e.g. `utf-8`.
    public var contentEncoding: String?
    /// `$.mid`.
    public var messageId: String?
    /// `$.cid`.
    public var correlationId: String?
    /// `$.uid`.
    public var userId: String?
    /// `$.ctime`: ISO 8601 creation time in UTC.
    public var creationTime: String?
    /// `$.exp`: ISO 8601 absolute expiry time in UTC.
    public var expiryTime: String?
    /// The local expiry: a message still waiting to be sent (offline, window full) or unacknowledged at this instant
    /// completes with the client's `expired` error and is not sent (again). ``expire(after:)`` sets it together with
    /// `$.exp`.
    public var deadline: ContinuousClock.Instant?
    /// `$.sub`: the IoT Plug and Play component.
    public var componentName: String?
    /// `$.on`: the output a module sends on (IoT Edge routes match it).
    public var outputName: String?
    /// Application properties, in order.
    public var properties: [(String, String)]

    /// A message with a body and optional properties.
    public init(
        body: [UInt8],
        contentType: String? = nil,
        contentEncoding: String? = nil,
        messageId: String? = nil,
        correlationId: String? = nil,
        userId: String? = nil,
        creationTime: String? = nil,
        expiryTime: String? = nil,
        componentName: String? = nil,
        outputName: String? = nil,
        properties: [(String, String)] = []
    ) {
        self.body = body
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.messageId = messageId
        self.correlationId = correlationId
        self.userId = userId
        self.creationTime = creationTime
        self.expiryTime = expiryTime
        self.componentName = componentName
        self.outputName = outputName
        self.properties = properties
    }

    /// Makes the message expire `lifetime` from now: locally (``deadline``) and for IoT Hub (`$.exp`, the wall-clock
    /// time in ISO 8601 UTC with milliseconds, as the Azure SDKs write it).
    public mutating func expire(after lifetime: Duration) {
        self.expire(after: lifetime, now: Date())
    }

    package mutating func expire(after lifetime: Duration, now: Date) {
        self.deadline = ContinuousClock.now + lifetime
        let (seconds, attoseconds) = lifetime.components
        let expiry = now.addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
        self.expiryTime = Self.iso8601(expiry)
    }

    /// `2026-12-01T22:31:57.123Z`.
    package static func iso8601(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }

    /// A UTF-8 text body.
    public init(text: String, contentType: String? = nil, contentEncoding: String? = "utf-8") {
        self.init(body: Array(text.utf8), contentType: contentType, contentEncoding: contentEncoding)
    }

    /// Whether the message has any system or application property (the topic then carries a property bag).
    package var hasProperties: Bool {
        self.contentType != nil || self.contentEncoding != nil || self.messageId != nil || self.correlationId != nil
            || self.userId != nil || self.creationTime != nil || self.expiryTime != nil || self.componentName != nil
            || self.outputName != nil || !self.properties.isEmpty
    }
}
