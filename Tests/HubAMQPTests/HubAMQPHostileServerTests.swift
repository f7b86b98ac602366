import AzureIoTCore
import AzureIoTTestSupport
import AzureIoTTesting
import Foundation
import HubAMQP
import Synchronization
import Testing

/// A scripted AMQP 1.0 server over TLS that behaves as no IoT Hub would: SASL PLAIN accepted, `open` with the idle
/// time-out chosen by the test, every attach answered, and then, on the cloud-to-device link, one delivery whose
/// frames never end (`more = true`) when asked. It counts what the client sends.
final class HostileAMQPServer: Sendable {
    struct Report: Sendable {
        /// Empty frames from the client after `open`.
        var heartbeats = 0
        /// Bytes of the endless delivery written before the client went away.
        var deliveryBytes = 0
        /// Whether the client ended the connection (a close frame, end of stream or a reset).
        var clientLeft = false
        /// Transfers from the client (e.g. a CBS put-token request, which this server never answers).
        var transfers = 0
    }

    final class Shared: Sendable {
        let report = Mutex(Report())
    }

    let listener: TLSListener
    private let shared = Shared()
    private let task: Mutex<Task<Void, Never>?> = Mutex(nil)

    init(idleTimeOut: UInt32?, endlessDelivery: Bool, mechanisms: [String] = ["PLAIN"]) async throws {
        let pki = try await TestPKI.shared()
        let identity = try X509Identity(certificateFile: pki.path("server.pem"), privateKeyFile: pki.path("server.key"))
        self.listener = try TLSListener(configuration: TLSServerConfiguration(identity: identity))
        let listener = self.listener
        let shared = self.shared
        self.task.withLock {
            $0 = Task {
                guard let connection = try? await listener.accept() else { return }
                await Self.serve(
                    connection,
                    idleTimeOut: idleTimeOut,
                    endlessDelivery: endlessDelivery,
                    mechanisms: mechanisms,
                    shared: shared
                )
                connection.close()
            }
        }
    }

    var port: Int { self.listener.port }
    var snapshot: Report { self.shared.report.withLock { $0 } }

    /// Waits until the scripted connection is over (the client left), at most `timeout`.
    func finished(within timeout: Duration) async -> Bool {
        let end = ContinuousClock.now + timeout
        while ContinuousClock.now < end {
            if self.snapshot.clientLeft { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    func stop() {
        self.listener.close()
        self.task.withLock { $0?.cancel() }
    }

    private static func serve(
        _ connection: TLSConnection,
        idleTimeOut: UInt32?,
        endlessDelivery: Bool,
        mechanisms: [String],
        shared: Shared
    ) async {
        var buffer: [UInt8] = []
        let framer = AMQPFramer(maximumFrameSize: 1 << 20)
        func readExactly(_ count: Int) async throws {
            while buffer.count < count {
                let bytes = try await connection.read(timeout: .seconds(30))
                guard !bytes.isEmpty else { throw TestFailure("closed") }
                buffer += bytes
            }
        }
        func nextFrame() async throws -> AMQPFrame {
            while true {
                if let (frame, size) = try framer.nextFrame(in: buffer[...]) {
                    buffer.removeFirst(size)
                    return frame
                }
                let bytes = try await connection.read(timeout: .seconds(30))
                guard !bytes.isEmpty else { throw TestFailure("closed") }
                buffer += bytes
            }
        }
        func send(_ performative: AMQPPerformative, type: AMQPFrame.FrameType = .amqp) async throws {
            try await connection.write(
                AMQPFrame(type: type, channel: 0, body: try performative.encoded()).encoded,
                timeout: .seconds(10)
            )
        }
        do {
            try await readExactly(8)
            buffer.removeFirst(8)
            try await connection.write(AMQPProtocolHeader.sasl.bytes)
            try await send(.saslMechanisms(SASLMechanisms(mechanisms: mechanisms)), type: .sasl)
            _ = try await nextFrame()
            try await send(.saslOutcome(SASLOutcome(code: .ok)), type: .sasl)
            try await readExactly(8)
            buffer.removeFirst(8)
            try await connection.write(AMQPProtocolHeader.amqp.bytes)
            var deviceBoundHandle: UInt32?
            var streaming = false
            while true {
                let frame = try await nextFrame()
                if frame.isHeartbeat {
                    shared.report.withLock { $0.heartbeats += 1 }
                    continue
                }
                switch try AMQPPerformative.decode(frame.body) {
                case .open:
                    try await send(
                        .open(
                            AMQPOpen(
                                containerId: "hostile",
                                maxFrameSize: 65_536,
                                channelMax: 0,
                                idleTimeOut: idleTimeOut
                            )
                        )
                    )
                case .begin(let begin):
                    try await send(
                        .begin(
                            AMQPBegin(remoteChannel: 0, nextOutgoingId: 0, incomingWindow: 5000, outgoingWindow: 5000)
                        )
                    )
                    _ = begin
                case .attach(let attach):
                    try await send(
                        .attach(
                            AMQPAttach(
                                name: attach.name,
                                handle: attach.handle,
                                isReceiver: !attach.isReceiver,
                                source: attach.source,
                                target: attach.target,
                                initialDeliveryCount: attach.isReceiver ? 0 : nil
                            )
                        )
                    )
                    if attach.isReceiver {
                        deviceBoundHandle = attach.handle
                    } else {
                        try await send(
                            .flow(
                                AMQPFlow(
                                    nextIncomingId: 0,
                                    incomingWindow: 5000,
                                    nextOutgoingId: 0,
                                    outgoingWindow: 5000,
                                    handle: attach.handle,
                                    deliveryCount: 0,
                                    linkCredit: 100
                                )
                            )
                        )
                    }
                case .flow(let flow):
                    guard endlessDelivery, !streaming, let handle = deviceBoundHandle, flow.handle == handle else {
                        break
                    }
                    streaming = true
                    let chunk = [UInt8](repeating: 0x41, count: 60 * 1024)
                    var first = true
                    while true {
                        let transfer = AMQPTransfer(
                            handle: handle,
                            deliveryId: first ? 0 : nil,
                            deliveryTag: first ? [0] : nil,
                            messageFormat: first ? 0 : nil,
                            more: true
                        )
                        first = false
                        try await connection.write(
                            AMQPFrame(
                                channel: 0,
                                body: try AMQPPerformative.transfer(transfer, payload: chunk).encoded()
                            ).encoded,
                            timeout: .seconds(10)
                        )
                        let total = shared.report.withLock { report -> Int in
                            report.deliveryBytes += chunk.count
                            return report.deliveryBytes
                        }
                        // 1 GB would be the client's memory if it kept every frame.
                        if total > 1 << 30 { return }
                    }
                case .close:
                    shared.report.withLock { $0.clientLeft = true }
                    return
                case .transfer:
                    shared.report.withLock { $0.transfers += 1 }
                default:
                    break
                }
            }
        } catch {
            shared.report.withLock { $0.clientLeft = true }
        }
    }
}

@Suite("IoT Hub AMQP client against a hostile server")
struct HubAMQPHostileServerTests {
    /// A client of `server` with an hour-long fixed token over SASL PLAIN, or over CBS when `cbs`; no reconnects.
    static func client(
        _ server: HostileAMQPServer,
        clock: any IoTClock = SystemClock(),
        cbs: Bool = false,
        operationTimeout: Duration = .seconds(10)
    ) async throws -> HubAMQPClient {
        let token = SASToken.generate(
            for: .device(hubHost: "testhub.azure-devices.net", deviceId: "dev1"),
            key: try SymmetricKey(base64: HubAMQPClientTests.key),
            expiry: UnixTime.now() + 3600
        )
        var configuration = HubAMQPConfiguration(
            hubHost: "testhub.azure-devices.net",
            deviceId: "dev1",
            tokenSource: FixedTokenCredential(token: token),
            gatewayHostName: "localhost",
            port: server.port,
            trustRoots: .pemFile(try await TestPKI.shared().path("ca.pem")),
            operationTimeout: operationTimeout
        )
        if cbs { configuration.authentication = .cbs(FixedTokenCredential(token: token), tokenType: .serviceBus) }
        configuration.reconnects = false
        return try HubAMQPClient(configuration: configuration, clock: clock)
    }

    /// In virtual time: the keep-alive timer is armed for the 500 ms floor (the server's 1 ms would have been 6.2 M
    /// frames in 20 s), and 2 s of virtual time give exactly four empty frames.
    @Test("a server idle time-out of 1 ms gets keep-alives every 500 ms, not millions")
    func heartbeatFloor() async throws {
        let server = try await HostileAMQPServer(idleTimeOut: 1, endlessDelivery: false)
        defer { server.stop() }
        let clock = ManualClock()
        let client = try await Self.client(server, clock: clock)
        try await client.connect()
        // Besides the keep-alive timer only the token's renewal (an hour away) is armed.
        func keepAliveArmed() -> Bool { clock.pendingIntervals.filter { $0 < .seconds(60) } == [.milliseconds(500)] }
        for beat in 1...4 {
            try await eventually("the keep-alive timer is armed again") { keepAliveArmed() }
            clock.advance(by: .milliseconds(500))
            try await eventually("keep-alive frame \(beat) reaches the server") { server.snapshot.heartbeats >= beat }
        }
        try await eventually("the keep-alive timer is armed again") { keepAliveArmed() }
        #expect(server.snapshot.heartbeats == 4)
        await client.close()
    }

    @Test("a cloud-to-device delivery that never ends is refused past 272 KB: the client leaves, memory stays flat")
    func endlessDelivery() async throws {
        let server = try await HostileAMQPServer(idleTimeOut: nil, endlessDelivery: true)
        defer { server.stop() }
        let before = ProcessMemory.peakResidentBytes()
        let client = try await Self.client(server)
        try await client.connect()
        #expect(await server.finished(within: .seconds(60)), "the client kept reading the delivery")
        // What the socket buffers held, not the gigabyte the server would have sent.
        #expect(server.snapshot.deliveryBytes < 64 << 20, "\(server.snapshot.deliveryBytes) bytes went out")
        #expect(ProcessMemory.peakResidentBytes() - before < 128 << 20)
        await #expect(throws: HubAMQPError.self) { try await client.send(AMQPMessage(data: [1])) }
        await client.close()
    }

    /// A hub that takes the CBS put-token and never answers: cancelling the connecting task ends `connect()` at once
    /// (before, only the operation time-out did), and the client leaves the server.
    @Test("connect waiting for a CBS answer that never comes returns as soon as its task is cancelled")
    func cbsWaitHonoursCancellation() async throws {
        let server = try await HostileAMQPServer(idleTimeOut: nil, endlessDelivery: false, mechanisms: ["ANONYMOUS"])
        defer { server.stop() }
        let client = try await Self.client(server, cbs: true, operationTimeout: .seconds(300))
        let connecting = Task { try await client.connect() }
        // The put-token request has reached the server: the client now waits for its answer.
        try await eventually("the CBS put-token reaches the server", within: .seconds(60)) {
            server.snapshot.transfers >= 1
        }
        let start = ContinuousClock.now
        connecting.cancel()
        let outcome = await connecting.result
        // Without cancellation the wait would last the 300 s operation time-out.
        #expect(ContinuousClock.now - start < .seconds(60))
        switch outcome {
        case .success: Issue.record("connect succeeded without a CBS answer")
        case .failure(let error): #expect(error is CancellationError, "\(error)")
        }
        await client.close()
        #expect(await server.finished(within: .seconds(60)))
    }

    /// In virtual time: a hub that takes the put-token and never answers keeps `connect(timeout:)` waiting exactly its
    /// time-out, then the attempt is cancelled and the call throws `timedOut` (the operation time-out is 300 s).
    @Test("connect(timeout:) gives up at its time-out when the hub never answers the CBS put-token")
    func connectTimeout() async throws {
        let server = try await HostileAMQPServer(idleTimeOut: nil, endlessDelivery: false, mechanisms: ["ANONYMOUS"])
        defer { server.stop() }
        let clock = ManualClock()
        let client = try await Self.client(server, clock: clock, cbs: true, operationTimeout: .seconds(300))
        let connecting = Task { try await client.connect(timeout: .seconds(20)) }
        try await eventually("the CBS put-token reaches the server", within: .seconds(60)) {
            server.snapshot.transfers >= 1
        }
        try await eventually("the connect timer is armed") { clock.pendingIntervals.contains(.seconds(20)) }
        clock.advance(by: .seconds(19))
        // One virtual second before its time-out the connect timer is still armed: nothing gave up yet.
        #expect(clock.pendingIntervals.contains(.seconds(1)))
        clock.advance(by: .seconds(1))
        switch await connecting.result {
        case .success: Issue.record("connect succeeded without a CBS answer")
        case .failure(let error): #expect((error as? HubAMQPError)?.code == .timedOut, "\(error)")
        }
        await client.close()
        #expect(await server.finished(within: .seconds(60)), "the cancelled attempt left its connection open")
    }

    @Test("a configuration that cannot work is refused when the client is made, naming the field")
    func invalidConfigurations() throws {
        let valid = HubAMQPConfiguration(
            hubHost: "testhub.azure-devices.net",
            deviceId: "dev1",
            tokenSource: FixedTokenCredential(token: try SASToken(parsing: "SharedAccessSignature sr=a&sig=b&se=1"))
        )
        _ = try HubAMQPClient(configuration: valid)
        var cases: [(String, HubAMQPConfiguration)] = []
        var configuration = valid
        configuration.deviceId = ""
        cases.append(("device id", configuration))
        configuration = valid
        configuration.moduleId = ""
        cases.append(("module id", configuration))
        configuration = valid
        configuration.port = 0
        cases.append(("port", configuration))
        configuration = valid
        configuration.operationTimeout = .zero
        cases.append(("operation time-out", configuration))
        configuration = valid
        configuration.connectTimeout = .zero
        cases.append(("connect time-out", configuration))
        configuration = valid
        configuration.idleTimeout = .seconds(-1)
        cases.append(("idle time-out", configuration))
        configuration = valid
        configuration.cloudToDeviceCredit = 0
        cases.append(("credit", configuration))
        configuration = valid
        configuration.maximumQueuedMessages = 0
        cases.append(("queue limit", configuration))
        for (name, configuration) in cases {
            #expect(throws: HubAMQPError.self, "\(name)") { try HubAMQPClient(configuration: configuration) }
            do {
                _ = try HubAMQPClient(configuration: configuration)
            } catch {
                #expect(error.code == .invalidArgument, "\(name): \(error)")
            }
        }
    }
}
