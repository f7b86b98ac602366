import AzureIoTCore
import CoreMetrics
import Synchronization
import Tracing

/// The device client's metrics (swift-metrics) and spans (swift-distributed-tracing). Metric objects are made once
/// per client, so with no backend bootstrapped a send costs a few no-op calls.
///
/// Metrics, each with the dimension `transport` (`mqtt` or `amqp`):
/// - `azure_iot_device_messages_sent_total`, `…_acknowledged_total`, `…_failed_total` (dimension `reason`: the
///   ``DeviceClientError/Code``, or `cancelled`);
/// - `azure_iot_device_send_duration` (timer, from `send` to the hub's acknowledgement);
/// - `azure_iot_device_sends_in_progress` (gauge: sends queued or waiting for the acknowledgement);
/// - `azure_iot_device_connection_events_total` (dimension `kind`: `connected`, `disconnected`,
///   `reconnectFailed`, `renewingToken`, `gaveUp`).
///
/// Spans: `azure_iot.connect`, `azure_iot.send` (producer; the trace context is injected into the message's
/// application properties, e.g. `traceparent` with a W3C propagator, so a backend can join the device's span) and
/// `azure_iot.method` (server; from the call's arrival to the application's answer).
final class DeviceTelemetry: Sendable {
    let tracer: any Tracer
    let transport: String
    private let factory: any MetricsFactory
    private let sent: Counter
    private let acknowledged: Counter
    private let duration: Timer
    private let inProgressGauge: Gauge
    private let inProgress = Atomic<Int>(0)
    private let failures = Mutex<[String: Counter]>([:])
    private let events = Mutex<[String: Counter]>([:])

    init(transport: DeviceClientConfiguration.Transport, tracer: (any Tracer)?, metrics: (any MetricsFactory)?) {
        let factory = metrics ?? MetricsSystem.factory
        self.factory = factory
        self.tracer = tracer ?? InstrumentationSystem.tracer
        self.transport = transport.rawValue
        let dimensions = [("transport", transport.rawValue)]
        self.sent = Counter(label: "azure_iot_device_messages_sent_total", dimensions: dimensions, factory: factory)
        self.acknowledged = Counter(
            label: "azure_iot_device_messages_acknowledged_total",
            dimensions: dimensions,
            factory: factory
        )
        self.duration = Timer(label: "azure_iot_device_send_duration", dimensions: dimensions, factory: factory)
        self.inProgressGauge = Gauge(
            label: "azure_iot_device_sends_in_progress",
            dimensions: dimensions,
            factory: factory
        )
    }

    /// Counts and times one send; `body` gets the span's context to inject.
    func send(_ body: (any Span) async throws -> Void) async throws {
        let span = self.tracer.startSpan("azure_iot.send", ofKind: .producer)
        span.attributes["azure_iot.transport"] = self.transport
        self.sent.increment()
        self.inProgressGauge.record(self.inProgress.add(1, ordering: .relaxed).newValue)
        let start = ContinuousClock.now
        defer {
            self.inProgressGauge.record(self.inProgress.subtract(1, ordering: .relaxed).newValue)
            span.end()
        }
        do {
            try await body(span)
            self.acknowledged.increment()
            let (seconds, attoseconds) = (ContinuousClock.now - start).components
            self.duration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        } catch {
            let reason = (error as? DeviceClientError)?.code.description ?? "cancelled"
            self.counter(reason, in: self.failures, label: "azure_iot_device_messages_failed_total", key: "reason")
                .increment()
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: reason))
            throw error
        }
    }

    /// A connection event, counted by kind.
    func record(_ event: ConnectionEvent) {
        self.counter(
            "\(event.kind)",
            in: self.events,
            label: "azure_iot_device_connection_events_total",
            key: "kind"
        ).increment()
    }

    private func counter(_ value: String, in cache: borrowing Mutex<[String: Counter]>, label: String, key: String)
        -> Counter
    {
        cache.withLock { counters in
            if let counter = counters[value] { return counter }
            let counter = Counter(
                label: label,
                dimensions: [("transport", self.transport), (key, value)],
                factory: self.factory
            )
            counters[value] = counter
            return counter
        }
    }

    /// A span around `body`, ended when it returns or throws (recording the error).
    func span<Result>(
        _ name: String,
        kind: SpanKind,
        _ body: () async throws -> Result
    ) async throws -> Result {
        let span = self.tracer.startSpan(name, ofKind: kind)
        span.attributes["azure_iot.transport"] = self.transport
        defer { span.end() }
        do {
            return try await body()
        } catch {
            span.recordError(error)
            throw error
        }
    }

    /// The method call with its answer inside a server span that starts now.
    func traced(_ request: MethodRequest) -> MethodRequest {
        let span = self.tracer.startSpan("azure_iot.method", ofKind: .server)
        span.attributes["azure_iot.transport"] = self.transport
        span.attributes["azure_iot.method"] = request.name
        let spanBox = SpanBox(span)
        return MethodRequest(name: request.name, requestId: request.requestId, payload: request.payload) {
            status,
            payload in
            span.attributes["azure_iot.method.status"] = status
            defer { spanBox.end() }
            try await request.respond(status: status, payload: payload)
        }
    }
}

/// Ends a span once.
private final class SpanBox: Sendable {
    private let span: Mutex<(any Span)?>
    init(_ span: any Span) { self.span = Mutex(span) }
    func end() { self.span.withLock { $0.take() }?.end() }
}

/// Puts trace-context keys into a telemetry message's application properties.
struct TelemetryPropertiesInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [(String, String)]) {
        carrier.removeAll { $0.0 == key }
        carrier.append((key, value))
    }
}
