/// Faults the emulator injects, changed at any time through ``IoTEmulator/injectFaults(_:)``.
public struct FaultPlan: Sendable {
    /// The next N hub connections (MQTT CONNECT, AMQP SASL) are refused: MQTT CONNACK 5 (IoT Hub answers every
    /// refusal so), AMQP `sasl-outcome` sys-temp.
    public var refuseConnections: Int = 0
    /// Telemetry acknowledgements (MQTT PUBACK, AMQP disposition) wait this long.
    public var acknowledgementDelay: Duration = .zero
    /// AMQP: the answer to a telemetry link attach waits this long (a slow hub), and the connection handles nothing
    /// else meanwhile.
    public var attachDelay: Duration = .zero
    /// Telemetry is recorded but never acknowledged.
    public var withholdAcknowledgements: Bool = false
    /// The next N DPS requests are answered 429 with ``provisioningThrottleRetryAfterSeconds``.
    public var provisioningThrottles: Int = 0
    /// The `Retry-After` sent with injected 429s.
    public var provisioningThrottleRetryAfterSeconds: Int = 1
    /// Registration ids DPS answers with a final `failed` or `disabled` status.
    public var provisioningOutcomes: [String: ProvisioningOutcome] = [:]

    /// A final DPS outcome to force.
    public enum ProvisioningOutcome: String, Sendable {
        /// `status: failed` with an error code and message.
        case failed
        /// `status: disabled`.
        case disabled
    }

    /// No faults.
    public init() {}
}
