public import AzureIoTCore
public import CoreMetrics
import HubAMQP
import HubMQTT
public import Logging
public import ServiceLifecycle
import Synchronization
public import Tracing

/// An IoT Hub device (or module) client with one API over MQTT and AMQP: telemetry, cloud-to-device messages, the
/// device twin, direct methods and connection events. The transport is one value of the configuration
/// (``DeviceClientConfiguration/transport``); nothing else in the caller's code changes with it.
///
/// The client is a swift-service-lifecycle `Service`: ``run()`` connects and keeps the connection (reconnecting under
/// the retry policy) until a `ServiceGroup` shuts down gracefully, the task is cancelled, or ``disconnect()``.
/// Every call throws ``DeviceClientError`` (and `CancellationError`). `HubMQTTClient` and `HubAMQPClient` stay
/// available for harnesses that need protocol detail; they use the same message types.
public final class DeviceClient: Service, Sendable {
    private enum Transport: Sendable {
        case mqtt(HubMQTTClient)
        case amqp(HubAMQPClient)
    }

    /// The configuration the client was made with.
    public let configuration: DeviceClientConfiguration
    private let transport: Transport
    private let shutDown = Mutex(false)
    private let telemetry: DeviceTelemetry

    /// Cloud-to-device messages; settle each with `CloudToDeviceMessage.complete()` (over MQTT taking it completes
    /// it), `CloudToDeviceMessage.reject()` or `CloudToDeviceMessage.abandon()` (AMQP).
    public let cloudToDeviceMessages: DeviceStream<CloudToDeviceMessage>
    /// Desired-property patches, after ``subscribe(to:)`` (MQTT: or once iterated).
    public let desiredPropertyPatches: DeviceStream<DesiredPropertyPatch>
    /// Direct-method calls, after ``subscribe(to:)`` (MQTT: or once iterated); answer each once.
    public let methodRequests: DeviceStream<MethodRequest>
    /// Connected, disconnected (with the reason), failed reconnect attempts, token renewals, and `gaveUp`.
    public let connectionEvents: DeviceStream<ConnectionEvent>

    /// Traffic the hub pushes only when the device asks for it.
    public enum Inbound: Hashable, Sendable, CaseIterable {
        /// Cloud-to-device messages (always delivered over AMQP).
        case cloudToDeviceMessages
        /// Desired-property patches.
        case desiredPropertyPatches
        /// Direct-method calls.
        case methodRequests
    }

    /// A client; nothing is sent until ``connect(timeout:)`` or ``run()``. Throws
    /// ``DeviceClientError/Code/invalidArgument`` for a configuration the transport cannot use.
    ///
    /// Metrics and spans go to `metrics` and `tracer`, by default the process's bootstrapped `MetricsSystem` and
    /// `InstrumentationSystem` (no-ops until a backend is bootstrapped). Metrics: messages sent, acknowledged and
    /// failed (by reason), send duration, sends in progress and connection events (by kind), each with the
    /// dimension `transport`. Spans: `azure_iot.connect`, `azure_iot.send` (whose trace context goes into the
    /// message's application properties, e.g. `traceparent` with a W3C propagator) and `azure_iot.method`.
    public init(
        configuration: DeviceClientConfiguration,
        logger: Logger = TLSConnection.disabledLogger,
        tracer: (any Tracer)? = nil,
        metrics: (any MetricsFactory)? = nil
    ) throws(DeviceClientError) {
        self.configuration = configuration
        let telemetry = DeviceTelemetry(transport: configuration.transport, tracer: tracer, metrics: metrics)
        self.telemetry = telemetry
        switch configuration.transport {
        case .mqtt, .mqttWebSockets:
            let authentication: HubMQTTConfiguration.Authentication =
                switch configuration.authentication {
                case .sas(let source): .sas(source)
                case .x509(let identity): .x509(identity)
                }
            var mqtt = HubMQTTConfiguration(
                identity: HubMQTTIdentity(
                    hubHost: configuration.hubHost,
                    deviceId: configuration.deviceId,
                    moduleId: configuration.moduleId,
                    modelId: configuration.modelId
                ),
                authentication: authentication
            )
            // The shared building blocks carry over whole; a port left nil becomes MQTT's.
            mqtt.endpoint = configuration.endpoint
            mqtt.timeouts = configuration.timeouts
            mqtt.retryPolicy = configuration.retryPolicy
            mqtt.inboundBufferSize = configuration.inboundBufferSize
            mqtt.maximumQueuedMessages = configuration.maximumQueuedMessages
            mqtt.eventObserver = { telemetry.record($0) }
            let client: HubMQTTClient
            do {
                client = try HubMQTTClient(configuration: mqtt, logger: logger)
            } catch {
                throw DeviceClientError(.invalidArgument, error.message, underlying: error)
            }
            self.transport = .mqtt(client)
            self.cloudToDeviceMessages = DeviceStream(client.cloudToDeviceMessages) {
                $0.mappingErrors(DeviceClientError.mapping)
            }
            self.desiredPropertyPatches = DeviceStream(client.desiredPropertyPatches)
            self.methodRequests = DeviceStream(client.methodRequests) { telemetry.traced($0) }
            self.connectionEvents = DeviceStream(client.connectionEvents)
        case .amqp, .amqpWebSockets:
            // AMQP would take a zero idle time-out as none; over both transports the keep-alive must be positive.
            guard configuration.keepAlive > .zero else {
                throw DeviceClientError(.invalidArgument, "the keep-alive must be positive")
            }
            let authentication: HubAMQPConfiguration.Authentication =
                switch configuration.authentication {
                case .sas(let source): .cbs(source, tokenType: .azureDevices)
                case .x509(let identity): .x509(identity)
                }
            var amqp = HubAMQPConfiguration(
                hubHost: configuration.hubHost,
                deviceId: configuration.deviceId,
                moduleId: configuration.moduleId,
                authentication: authentication
            )
            amqp.endpoint = configuration.endpoint
            amqp.modelId = configuration.modelId
            amqp.timeouts = configuration.timeouts
            amqp.retryPolicy = configuration.retryPolicy
            amqp.inboundBufferSize = configuration.inboundBufferSize
            amqp.maximumQueuedMessages = configuration.maximumQueuedMessages
            amqp.eventObserver = { telemetry.record($0) }
            let client: HubAMQPClient
            do {
                client = try HubAMQPClient(configuration: amqp, logger: logger)
            } catch {
                throw DeviceClientError(.invalidArgument, error.message, underlying: error)
            }
            self.transport = .amqp(client)
            self.cloudToDeviceMessages = DeviceStream(client.cloudToDeviceMessages) {
                $0.cloudToDeviceMessage.mappingErrors(DeviceClientError.mapping)
            }
            self.desiredPropertyPatches = DeviceStream(client.desiredPropertyPatches) { $0 }
            self.methodRequests = DeviceStream(client.methodRequests) { telemetry.traced($0) }
            self.connectionEvents = DeviceStream(client.connectionEvents) { $0 }
        }
    }

    /// The transport's error as ``DeviceClientError``; after ``disconnect()`` "not connected" is ``DeviceClientError/Code/shutDown``.
    private func mapped<Result>(_ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            let mapped = DeviceClientError.mapping(error)
            if var error = mapped as? DeviceClientError, error.code == .notConnected, self.shutDown.withLock({ $0 }) {
                error.code = .shutDown
                throw error
            }
            throw mapped
        }
    }

    /// Connects (TLS, then MQTT CONNECT or AMQP open and links), tried under the retry policy within `timeout`
    /// (default: the configuration's connect time-out). Throws the last failure, ``DeviceClientError/Code/timedOut``,
    /// or ``DeviceClientError/Code/retriesExhausted`` with refused credentials as its cause.
    public func connect(timeout: Duration? = nil) async throws {
        let timeout = timeout ?? self.configuration.connectTimeout
        try await self.telemetry.span("azure_iot.connect", kind: .client) {
            try await self.mapped {
                switch self.transport {
                case .mqtt(let client):
                    try await client.connect(timeout: timeout)
                case .amqp(let client):
                    try await client.connect(timeout: timeout)
                }
            }
        }
    }

    /// Connects, then keeps the connection until ``disconnect()``, task cancellation, or a graceful shutdown of the
    /// `ServiceGroup` running it; then says goodbye (MQTT DISCONNECT, AMQP close) and returns. Throws what the first
    /// connect throws, and ``DeviceClientError/Code/retriesExhausted`` when the retry policy gave up later.
    public func run() async throws {
        try await self.mapped {
            switch self.transport {
            case .mqtt(let client): try await client.run()
            case .amqp(let client): try await client.run()
            }
        }
    }

    /// Disconnects for good: pending sends fail with ``DeviceClientError/Code/shutDown``, the streams end.
    public func disconnect() async {
        self.shutDown.withLock { $0 = true }
        switch self.transport {
        case .mqtt(let client): await client.disconnect()
        case .amqp(let client): await client.close()
        }
    }

    /// Connects, runs `body` with the client and disconnects, also when `body` throws.
    public static func withConnection<Result: Sendable>(
        configuration: DeviceClientConfiguration,
        logger: Logger = TLSConnection.disabledLogger,
        _ body: (DeviceClient) async throws -> Result
    ) async throws -> Result {
        let client = try DeviceClient(configuration: configuration, logger: logger)
        do {
            try await client.connect()
            let result = try await body(client)
            await client.disconnect()
            return result
        } catch {
            await client.disconnect()
            throw error
        }
    }

    /// Sends telemetry and returns when IoT Hub acknowledged it (MQTT PUBACK, AMQP accepted), within `timeout`
    /// (default: the operation time-out) or the message's `TelemetryMessage.deadline`
    /// (``DeviceClientError/Code/expired``). While reconnecting the message waits (at most
    /// ``DeviceClientConfiguration/maximumQueuedMessages`` do; then ``DeviceClientError/Code/queueFull``).
    public func send(_ message: TelemetryMessage, timeout: Duration? = nil) async throws {
        try await self.telemetry.send { span in
            var message = message
            self.telemetry.tracer.inject(span.context, into: &message.properties, using: TelemetryPropertiesInjector())
            try await self.send(traced: message, timeout: timeout)
        }
    }

    private func send(traced message: TelemetryMessage, timeout: Duration?) async throws {
        try await self.mapped {
            switch self.transport {
            case .mqtt(let client): try await client.send(message, timeout: timeout)
            case .amqp(let client):
                guard message.body.count <= TelemetryMessage.maximumSize else {
                    throw DeviceClientError(
                        .messageTooLarge,
                        "the message is \(message.body.count) bytes; IoT Hub takes at most 256 KB"
                    )
                }
                try await client.send(message, timeout: timeout)
            }
        }
    }

    /// Reads the device twin; while reconnecting it waits for the connection, within `timeout`.
    public func twin(timeout: Duration? = nil) async throws -> Twin {
        try await self.mapped {
            switch self.transport {
            case .mqtt(let client): try await client.twin(timeout: timeout)
            case .amqp(let client): try await client.twin(timeout: timeout)
            }
        }
    }

    /// Patches reported properties with a JSON object; returns the new reported version.
    @discardableResult
    public func updateReportedProperties(_ json: [UInt8], timeout: Duration? = nil) async throws -> Int? {
        try await self.mapped {
            switch self.transport {
            case .mqtt(let client): try await client.updateReportedProperties(json, timeout: timeout)
            case .amqp(let client): try await client.updateReportedProperties(json, timeout: timeout)
            }
        }
    }

    /// Asks the hub for `kinds` now (if connected) and on every reconnect. Before ``connect(timeout:)`` this only
    /// records the wish.
    public func subscribe(to kinds: Set<Inbound>) async throws {
        try await self.mapped {
            switch self.transport {
            case .mqtt(let client):
                var wanted: Set<HubMQTTClient.Inbound> = []
                if kinds.contains(.cloudToDeviceMessages) { wanted.insert(.cloudToDeviceMessages) }
                if kinds.contains(.desiredPropertyPatches) { wanted.insert(.desiredPropertyPatches) }
                if kinds.contains(.methodRequests) { wanted.insert(.methodRequests) }
                try await client.subscribe(to: wanted)
            case .amqp(let client):
                var wanted: Set<HubAMQPClient.Inbound> = []
                if kinds.contains(.desiredPropertyPatches) { wanted.insert(.desiredPropertyPatches) }
                if kinds.contains(.methodRequests) { wanted.insert(.methodRequests) }
                try await client.subscribe(to: wanted)
            }
        }
    }
}
