/// MQTT quality of service.
public enum MQTTQoS: UInt8, Sendable, Hashable, Comparable {
    /// At most once.
    case atMostOnce = 0
    /// At least once (what IoT Hub supports for telemetry and C2D).
    case atLeastOnce = 1
    /// Exactly once (IoT Hub closes the connection on QoS 2 publishes).
    case exactlyOnce = 2

    /// Orders by guarantee: at most once < at least once < exactly once.
    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }
}
