public import AzureIoTCore
public import AzureIoTTesting
import Foundation
public import Logging

/// A local Device Provisioning Service and IoT Hub: DPS REST, MQTT and AMQP on loopback with a TLS certificate from
/// a CA it makes, the same authentication as Azure (SAS, derived group keys, X.509), and an API to see what devices
/// did and to inject faults.
///
/// ```swift
/// let emulator = try await IoTEmulator.start()
/// defer { Task { await emulator.shutdown() } }
/// let connectionString = emulator.endpoints.devices[0].connectionString
/// ```
public final class IoTEmulator: Sendable {
    /// Where to connect and with what credentials.
    public let endpoints: EmulatorEndpoints
    /// The configuration in force, keys filled in.
    public let configuration: EmulatorConfiguration
    /// The CA that signed the server certificate (clients trust ``EmulatorEndpoints/caCertificatePath``).
    public let certificateAuthority: CertificateAuthority
    private let hub: EmulatedHub
    private let limiter: ConnectionLimiter
    private let dps: EmulatorListener
    private let mqtt: EmulatorListener
    private let amqp: EmulatorListener
    private let webSockets: EmulatorListener
    private let dpsMQTT: EmulatorListener
    private let dpsWebSockets: EmulatorListener
    private let service: EmulatorListener
    private let amqpPlain: EmulatorListener?
    private let blob: EmulatorListener
    private let blobs: BlobStore
    private let workload: EmulatorListener?
    private let dpsAMQP: EmulatorListener
    private let tasks: [Task<Void, Never>]

    private init(
        endpoints: EmulatorEndpoints,
        configuration: EmulatorConfiguration,
        certificateAuthority: CertificateAuthority,
        hub: EmulatedHub,
        limiter: ConnectionLimiter,
        dps: EmulatorListener,
        mqtt: EmulatorListener,
        amqp: EmulatorListener,
        webSockets: EmulatorListener,
        dpsMQTT: EmulatorListener,
        dpsWebSockets: EmulatorListener,
        service: EmulatorListener,
        amqpPlain: EmulatorListener?,
        blob: EmulatorListener,
        blobs: BlobStore,
        workload: EmulatorListener?,
        dpsAMQP: EmulatorListener
    ) {
        self.workload = workload
        self.dpsAMQP = dpsAMQP
        self.amqpPlain = amqpPlain
        self.blob = blob
        self.blobs = blobs
        self.endpoints = endpoints
        self.configuration = configuration
        self.certificateAuthority = certificateAuthority
        self.hub = hub
        self.limiter = limiter
        self.dps = dps
        self.mqtt = mqtt
        self.amqp = amqp
        self.webSockets = webSockets
        self.dpsMQTT = dpsMQTT
        self.dpsWebSockets = dpsWebSockets
        self.service = service
        self.tasks = [
            Task { await dps.run() }, Task { await mqtt.run() }, Task { await amqp.run() },
            Task { await webSockets.run() }, Task { await dpsMQTT.run() }, Task { await dpsWebSockets.run() },
            Task { await service.run() },
            Task { await amqpPlain?.run() },
            Task { await blob.run() },
            Task { await workload?.run() },
            Task { await dpsAMQP.run() },
            // Cloud-to-device messages expire (with feedback) even while their device stays away.
            Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await hub.expireCloudToDevice()
                }
            },
        ]
    }

    /// Starts the emulator: fills in missing keys, makes its CA and server certificate, writes the CA PEM to the
    /// state directory and listens. Throws ``EmulatorError/Code/startFailed`` with the reason.
    public static func start(
        configuration: EmulatorConfiguration = .default,
        logger: Logger = Logger(label: "azure-iot.emulator", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws(EmulatorError) -> IoTEmulator {
        var configuration = configuration
        do {
            try configuration.validate()
            let store = try configuration.dataDirectory.map { path throws(EmulatorError) in
                try EmulatorStore(directory: path)
            }
            if let store, let text = try? await store.meta("keys"), let keys = try? JSONValue(parsing: text) {
                // Keys generated at an earlier start stay the same, so printed connection strings keep working.
                Self.reuseKeys(keys, in: &configuration)
            }
            Self.fillKeys(&configuration)
            if let store { try? await store.setMeta("keys", Self.keys(of: configuration).jsonText) }
            // libdispatch creates the descriptors behind its timers on first use, and traps (SIGILL) when it cannot:
            // sleep once on each clock now, so that a timer due while every descriptor is taken needs none.
            try? await Task.sleep(for: .milliseconds(1))
            try? await Task.sleep(until: .now + .milliseconds(1), clock: SuspendingClock())
            try? await Task.sleep(nanoseconds: 1_000_000)
            let authority = try Self.certificateAuthority(in: store?.directory)
            let serverNames = Array(
                Set(["localhost", "127.0.0.1", "::1", configuration.listenAddress, configuration.hubHost])
            )
            let server = try authority.issue(commonName: "localhost", subjectAlternativeNames: serverNames.sorted())
            let directory = try Self.stateDirectory(configuration)
            let caPath = (directory as NSString).appendingPathComponent("emulator-ca.pem")
            guard FileManager.default.createFile(atPath: caPath, contents: Data(authority.certificatePEM.utf8)) else {
                throw EmulatorError(.startFailed, "cannot write the CA certificate to '\(caPath)'")
            }
            let (limits, clamped) = configuration.limits.clampedToDescriptors()
            if clamped {
                logger.warning(
                    "connection limits lowered to keep file descriptors in reserve",
                    metadata: [
                        "maximumConnections": "\(limits.maximumConnections)",
                        "configured": "\(configuration.limits.maximumConnections)",
                    ]
                )
            }
            configuration.limits = limits
            let tls = TLSServerConfiguration(
                identity: server.identity,
                clientAuthentication: .requestedUnverified,
                handshakeTimeout: .seconds(limits.handshakeTimeoutSeconds)
            )
            let limiter = ConnectionLimiter(limits: limits)
            let policies = try ServicePolicies(
                hubHost: configuration.hubHost,
                policies: configuration.sharedAccessPolicies
            )
            let hub = try EmulatedHub(
                hubHost: configuration.hubHost,
                policies: policies,
                eventHub: configuration.eventHub,
                logger: logger
            )
            await hub.setMaximumRetainedTelemetry(limits.maximumRetainedTelemetry)
            await hub.setVerifiedCertificateAuthorities(
                try Self.verifiedCertificateAuthorities(configuration) + [authority.identity.leaf]
            )
            var restored = false
            if let store { restored = (try? await store.meta("initialized")) != nil }
            if let store, restored {
                do throws(SQLiteError) {
                    let (snapshot, skipped) = try await store.load()
                    await hub.restore(from: store, snapshot)
                    logger.info(
                        "emulator state restored",
                        metadata: [
                            "identities": "\(snapshot.identities.count)", "events": "\(snapshot.events.count)",
                            "cloudToDevice": "\(snapshot.cloudToDevice.count)", "skipped": "\(skipped)",
                        ]
                    )
                } catch {
                    throw EmulatorError(.startFailed, "cannot read the emulator database: \(error)")
                }
            }
            for device in configuration.devices where !restored {
                await hub.addIdentity(
                    IdentityName(deviceId: device.deviceId),
                    key: try device.primaryKey.map { key throws(AzureIoTError) in try SymmetricKey(base64: key) },
                    thumbprint: device.x509Thumbprint,
                    certificateAuthorities: try device.x509CertificateAuthorityPEM.map { pem throws(AzureIoTError) in
                        try X509Certificate.certificates(fromPEM: pem)
                    } ?? [],
                    desired: device.initialDesiredProperties
                )
                for module in device.modules ?? [] {
                    await hub.addIdentity(
                        IdentityName(deviceId: device.deviceId, moduleId: module.moduleId),
                        key: try module.primaryKey.map { key throws(AzureIoTError) in try SymmetricKey(base64: key) },
                        thumbprint: nil,
                        desired: nil
                    )
                }
            }
            if let store, !restored {
                await hub.useStore(store)
                try? await store.setMeta("initialized", ProvisioningService.timestamp(Date()))
            }
            let provisioning = try ProvisioningService(
                configuration: configuration,
                hub: hub,
                certificateAuthority: authority,
                logger: logger
            )
            let host = configuration.listenAddress
            let handler = HTTPConnectionHandler(
                name: "DPS",
                logger: logger,
                handle: { request, certificates in
                    await provisioning.handle(request, peerCertificates: certificates)
                },
                refusal: { error in ProvisioningService.error(error.status, error.status * 1000 + 1, error.description)
                }
            )
            let handshakes = HandshakeGate(limit: limits.maximumConcurrentHandshakes)
            /// Serves the connections `socket` accepts with `serve`, under the shared limits.
            func serving(
                _ socket: TLSListener,
                _ name: String,
                _ serve: @escaping @Sendable (TLSConnection) async -> Void
            ) -> EmulatorListener {
                EmulatorListener(
                    listener: socket,
                    name: name,
                    limiter: limiter,
                    handshakes: handshakes,
                    handshakeTimeout: .seconds(limits.handshakeTimeoutSeconds),
                    logger: logger,
                    serve: serve
                )
            }
            func listener(
                _ port: Int,
                _ name: String,
                plaintext: Bool = false,
                _ serve: @escaping @Sendable (TLSConnection) async -> Void
            ) throws(AzureIoTError) -> EmulatorListener {
                serving(
                    try TLSListener(host: host, port: port, configuration: tls, plaintext: plaintext, logger: logger),
                    name,
                    serve
                )
            }
            let dps = try listener(configuration.dpsPort, "dps") { await handler.serve($0) }
            let dpsMQTTHandler = DPSMQTTHandler(service: provisioning, limits: limits, logger: logger)
            let dpsMQTT = try listener(configuration.dpsMQTTPort, "dps-mqtt") { await dpsMQTTHandler.serve($0) }
            @Sendable func serveMQTT(_ connection: TLSConnection) async {
                await MQTTDeviceConnection(
                    connection: connection,
                    hub: hub,
                    linkId: await hub.makeId(),
                    limits: limits,
                    logger: logger
                ).run()
            }
            /// A listener whose connections first upgrade to a WebSocket at `paths` offering one of `protocols`; `serve`
            /// gets the connection and the sub-protocol chosen.
            func webSocketListener(
                _ port: Int,
                _ name: String,
                paths: [String],
                protocols: [String],
                _ serve: @escaping @Sendable (TLSConnection, String) async -> Void
            ) throws(AzureIoTError) -> EmulatorListener {
                try listener(port, name) { connection in
                    do {
                        let chosen = try await connection.acceptWebSocket(
                            paths: paths,
                            protocols: protocols,
                            maximumFrameSize: limits.maximumWebSocketFrameBytes,
                            timeout: .seconds(limits.handshakeTimeoutSeconds)
                        )
                        await serve(connection, chosen)
                    } catch {
                        logger.debug("WebSocket upgrade refused", metadata: ["error": "\(error)"])
                    }
                }
            }
            let dpsAMQPHandler = DPSAMQPHandler(service: provisioning, limits: limits, logger: logger)
            let dpsAMQP = try listener(configuration.dpsAMQPPort, "dps-amqp") { await dpsAMQPHandler.serve($0) }
            let dpsWebSockets = try webSocketListener(
                configuration.dpsWebSocketPort,
                "dps-websockets",
                paths: [WebSocketUpgrade.iotHubPath],
                protocols: ["mqtt", "AMQPWSB10"]
            ) { connection, chosen in
                // DPS's WebSocket endpoint: the sub-protocol picks MQTT or AMQP, as on the hub's.
                if chosen.lowercased() == "mqtt" {
                    await dpsMQTTHandler.serve(connection)
                } else {
                    await dpsAMQPHandler.serve(connection)
                }
            }
            let mqtt = try listener(configuration.mqttPort, "mqtt") { await serveMQTT($0) }
            @Sendable func serveAMQP(_ connection: TLSConnection) async {
                await AMQPDeviceConnection(
                    connection: connection,
                    hub: hub,
                    linkId: await hub.makeId(),
                    limits: limits,
                    logger: logger
                ).run()
            }
            let amqp = try listener(configuration.amqpPort, "amqp") { await serveAMQP($0) }
            let amqpPlain = try configuration.amqpPlainPort.map { port throws(AzureIoTError) in
                try listener(port, "amqp-plain", plaintext: true) { await serveAMQP($0) }
            }
            let webSockets = try webSocketListener(
                configuration.webSocketPort,
                "websockets",
                // Device SDKs use IoT Hub's path; uamqp (the Python service and Event Hubs SDKs) its own.
                paths: [WebSocketUpgrade.iotHubPath, "/$servicebus/websocket"],
                protocols: ["mqtt", "AMQPWSB10"]
            ) { connection, chosen in
                // IoT Hub's WebSocket endpoint: the sub-protocol the client asks for picks MQTT or AMQP.
                if chosen.lowercased() == "mqtt" { await serveMQTT(connection) } else { await serveAMQP(connection) }
            }
            // Blob port first: the grants the service port hands out name it.
            let blobListener = try TLSListener(
                host: host,
                port: configuration.blobPort,
                configuration: tls,
                logger: logger
            )
            let blobs = BlobStore(
                directory: configuration.dataDirectory ?? directory,
                host: "\(host == "127.0.0.1" || host == "0.0.0.0" ? "localhost" : host):\(blobListener.port)",
                hub: hub,
                logger: logger
            )
            let blobHandler = HTTPConnectionHandler(
                name: "blob",
                logger: logger,
                handle: { request, _ in await blobs.handle(request) },
                refusal: { error in BlobStore.error(error.status, "InvalidInput", error.description) },
                maximumBodyBytes: 16 << 20
            )
            let blob = serving(blobListener, "blob") { await blobHandler.serve($0) }
            var serviceAPI = ServiceAPI(hub: hub, policies: policies, logger: logger)
            serviceAPI.blobs = blobs
            let serviceHandler = HTTPConnectionHandler(
                name: "service",
                logger: logger,
                handle: { [serviceAPI] request, certificates in
                    await serviceAPI.handle(request, peerCertificates: certificates)
                },
                refusal: ServiceAPI.refusal
            )
            let service = try listener(configuration.servicePort, "service") { await serviceHandler.serve($0) }
            var (workload, edgeEndpoint): (EmulatorListener?, EmulatorEndpoints.EdgeEndpoint?) = (nil, nil)
            if let edge = configuration.edge {
                await hub.configureEdge(deviceId: edge.deviceId, routes: try edge.parsedRoutes())
                let path = edge.workloadSocketPath ?? (directory as NSString).appendingPathComponent("workload.sock")
                let api = WorkloadAPI(
                    hub: hub,
                    edgeDeviceId: edge.deviceId,
                    trustBundlePEM: authority.certificatePEM
                )
                let workloadHandler = HTTPConnectionHandler(
                    name: "workload",
                    logger: logger,
                    handle: { request, _ in await api.handle(request) },
                    refusal: { error in WorkloadAPI.error(error.status, error.description) }
                )
                workload = serving(
                    try TLSListener(unixSocketPath: path, configuration: tls, logger: logger),
                    "workload"
                ) { await workloadHandler.serve($0) }
                var modules: [String: [String: String]] = [:]
                let device = configuration.devices.first { $0.deviceId == edge.deviceId }
                for module in device?.modules ?? [] {
                    let name = IdentityName(deviceId: edge.deviceId, moduleId: module.moduleId)
                    modules[module.moduleId] = [
                        "IOTEDGE_IOTHUBHOSTNAME": configuration.hubHost,
                        "IOTEDGE_GATEWAYHOSTNAME": host == "127.0.0.1" || host == "0.0.0.0" ? "localhost" : host,
                        "IOTEDGE_DEVICEID": edge.deviceId,
                        "IOTEDGE_MODULEID": module.moduleId,
                        "IOTEDGE_MODULEGENERATIONID": await hub.generationId(name) ?? "",
                        "IOTEDGE_WORKLOADURI": "unix://\(path)",
                        "IOTEDGE_APIVERSION": "2019-01-30",
                        "IOTEDGE_AUTHSCHEME": "sasToken",
                    ]
                }
                edgeEndpoint = .init(deviceId: edge.deviceId, workloadURI: "unix://\(path)", modules: modules)
            }
            var endpoints = Self.endpoints(
                configuration,
                caPath: caPath,
                dps: dps.port,
                mqtt: mqtt.port,
                amqp: amqp.port,
                webSockets: webSockets.port,
                dpsMQTT: dpsMQTT.port,
                dpsWebSockets: dpsWebSockets.port,
                service: service.port,
                amqpPlain: amqpPlain?.port,
                blob: blob.port
            )
            endpoints.edge = edgeEndpoint
            endpoints.dpsAMQP = .init(host: host, port: dpsAMQP.port)
            logger.info(
                "emulator listening",
                metadata: [
                    "dps": "\(dps.port)", "mqtt": "\(mqtt.port)", "amqp": "\(amqp.port)",
                    "websockets": "\(webSockets.port)", "dps-mqtt": "\(dpsMQTT.port)",
                    "dps-websockets": "\(dpsWebSockets.port)", "service": "\(service.port)",
                ]
            )
            return IoTEmulator(
                endpoints: endpoints,
                configuration: configuration,
                certificateAuthority: authority,
                hub: hub,
                limiter: limiter,
                dps: dps,
                mqtt: mqtt,
                amqp: amqp,
                webSockets: webSockets,
                dpsMQTT: dpsMQTT,
                dpsWebSockets: dpsWebSockets,
                service: service,
                amqpPlain: amqpPlain,
                blob: blob,
                blobs: blobs,
                workload: workload,
                dpsAMQP: dpsAMQP
            )
        } catch let error as EmulatorError {
            throw error
        } catch let error as AzureIoTError {
            throw EmulatorError(.startFailed, error.message)
        } catch {
            throw EmulatorError(.startFailed, "\(error)")
        }
    }

    /// Connections open now, on all ports (those past their TCP accept, handshaking or served).
    public var openConnections: Int { self.limiter.openConnections }

    /// Stops listening and closes every connection.
    public func shutdown() async {
        self.dps.close()
        self.mqtt.close()
        self.amqp.close()
        self.webSockets.close()
        self.dpsMQTT.close()
        self.dpsWebSockets.close()
        self.service.close()
        self.amqpPlain?.close()
        self.blob.close()
        self.workload?.close()
        self.dpsAMQP.close()
        for task in self.tasks { task.cancel() }
        for task in self.tasks { await task.value }
    }

    // MARK: - What devices did

    /// Telemetry received, oldest first, optionally for one device.
    public func telemetry(deviceId: String? = nil) async -> [ReceivedTelemetry] {
        await self.hub.telemetry.filter { deviceId == nil || $0.deviceId == deviceId }
    }

    /// Waits until at least `count` messages from `deviceId` (or any device) arrived; throws
    /// ``EmulatorError/Code/timedOut``.
    public func waitForTelemetry(deviceId: String? = nil, count: Int = 1, timeout: Duration = .seconds(30)) async throws
        -> [ReceivedTelemetry]
    {
        try await self.poll(timeout: timeout, what: "\(count) telemetry messages") {
            let messages = await self.telemetry(deviceId: deviceId)
            return messages.count >= count ? messages : nil
        }
    }

    /// The `IOTEDGE_*` environment of a module of the Edge device (``EmulatorConfiguration/edge``), as edgeAgent
    /// would start it; `nil` for an unknown module or without an Edge device.
    public func edgeEnvironment(moduleId: String) -> [String: String]? {
        self.endpoints.edge?.modules[moduleId]
    }

    /// Messages routed to an Edge module's input that it has not acknowledged yet, and those dropped because its
    /// queue was full.
    public func moduleInputBacklog(moduleId: String) async -> (waiting: Int, dropped: Int) {
        guard let edge = self.configuration.edge else { return (0, 0) }
        return await self.hub.moduleInputBacklog(IdentityName(deviceId: edge.deviceId, moduleId: moduleId))
    }

    /// DPS registrations handled.
    public func registrations() async -> [ProvisioningRecord] { await self.hub.registrations }

    /// The IoT Plug and Play model id (`dtmi:…`) a device (or module) announced when it last connected (the MQTT user
    /// name's `model-id`, or `com.microsoft:model-id` on its AMQP telemetry link), or `nil`.
    public func modelId(deviceId: String, moduleId: String? = nil) async -> String? {
        await self.hub.modelIds[IdentityName(deviceId: deviceId, moduleId: moduleId)]
    }

    /// A device's (or module's) twin.
    public func twin(deviceId: String, moduleId: String? = nil) async throws(EmulatorError) -> TwinRecord {
        guard let twin = await self.hub.twin(IdentityName(deviceId: deviceId, moduleId: moduleId)) else {
            throw EmulatorError(.unknownIdentity, "no identity '\(deviceId)\(moduleId.map { "/\($0)" } ?? "")'")
        }
        return twin
    }

    /// Waits until the reported properties satisfy `condition`.
    public func waitForReportedProperties(
        deviceId: String,
        timeout: Duration = .seconds(30),
        where condition: @escaping @Sendable (JSONValue) -> Bool
    ) async throws -> JSONValue {
        try await self.poll(timeout: timeout, what: "reported properties of '\(deviceId)'") {
            guard let twin = await self.hub.twin(IdentityName(deviceId: deviceId)), condition(twin.reported) else {
                return nil
            }
            return twin.reported
        }
    }

    /// Whether the identity has a live connection.
    public func isConnected(deviceId: String, moduleId: String? = nil) async -> Bool {
        await self.hub.isConnected(IdentityName(deviceId: deviceId, moduleId: moduleId))
    }

    /// What the identity did so far (token authentications, connections, heartbeats).
    public func activity(deviceId: String, moduleId: String? = nil) async -> IdentityActivity {
        await self.hub.activity[IdentityName(deviceId: deviceId, moduleId: moduleId)] ?? IdentityActivity()
    }

    /// Waits until the identity's activity satisfies `condition`; returns it. Throws ``EmulatorError/Code/timedOut``.
    @discardableResult
    public func waitForActivity(
        deviceId: String,
        moduleId: String? = nil,
        timeout: Duration = .seconds(30),
        _ condition: @Sendable @escaping (IdentityActivity) -> Bool
    ) async throws -> IdentityActivity {
        try await self.poll(timeout: timeout, what: "the expected activity of '\(deviceId)'") {
            let activity = await self.activity(deviceId: deviceId, moduleId: moduleId)
            return condition(activity) ? activity : nil
        }
    }

    /// Waits until the identity is disconnected.
    public func waitUntilDisconnected(deviceId: String, moduleId: String? = nil, timeout: Duration = .seconds(30))
        async throws
    {
        _ = try await self.poll(timeout: timeout, what: "'\(deviceId)' to disconnect") {
            await self.isConnected(deviceId: deviceId, moduleId: moduleId) ? nil : true
        }
    }

    /// Waits until the identity is connected.
    public func waitUntilConnected(deviceId: String, moduleId: String? = nil, timeout: Duration = .seconds(30))
        async throws
    {
        _ = try await self.poll(timeout: timeout, what: "a connection from '\(deviceId)'") {
            await self.isConnected(deviceId: deviceId, moduleId: moduleId) ? true : nil
        }
    }

    // MARK: - Acting as the service

    /// Queues a cloud-to-device message; returns its message id.
    public func sendCloudToDevice(deviceId: String, body: [UInt8], properties: [String: String] = [:])
        async throws(EmulatorError) -> String
    {
        guard await self.hub.hasIdentity(IdentityName(deviceId: deviceId)) else {
            throw EmulatorError(.unknownIdentity, "no device '\(deviceId)'")
        }
        do throws(EmulatedHub.CloudToDeviceRefusal) {
            return try await self.hub.enqueueCloudToDevice(
                CloudToDeviceRecord(
                    messageId: "",
                    deviceId: deviceId,
                    body: body,
                    properties: properties,
                    state: .queued,
                    deliveryCount: 0
                )
            )
        } catch {
            switch error {
            case .unknownDevice: throw EmulatorError(.unknownIdentity, "no device '\(deviceId)'")
            case .queueFull:
                throw EmulatorError(.queueFull, "'\(deviceId)' already has 50 cloud-to-device messages queued")
            }
        }
    }

    /// Every cloud-to-device message and its state.
    public func cloudToDeviceMessages() async -> [CloudToDeviceRecord] { await self.hub.cloudToDeviceRecords() }

    /// Waits until a cloud-to-device message reaches `state`.
    public func waitForCloudToDevice(messageId: String, state: CloudToDeviceState, timeout: Duration = .seconds(30))
        async throws -> CloudToDeviceRecord
    {
        try await self.poll(timeout: timeout, what: "message '\(messageId)' to be \(state)") {
            await self.hub.cloudToDeviceRecords().first { $0.messageId == messageId && $0.state == state }
        }
    }

    /// Invokes a direct method and waits for the device's answer. Throws ``EmulatorError/Code/deviceNotConnected``
    /// (not connected or not subscribed, IoT Hub's 404) or ``EmulatorError/Code/timedOut`` (504).
    public func invokeMethod(
        deviceId: String,
        moduleId: String? = nil,
        name: String,
        payload: JSONValue = .null,
        timeout: Duration = .seconds(30)
    ) async throws(EmulatorError) -> MethodResponse {
        do {
            return try await self.hub.invokeMethod(
                IdentityName(deviceId: deviceId, moduleId: moduleId),
                method: name,
                payload: payload.jsonBytes,
                timeout: timeout
            )
        } catch .timedOut {
            throw EmulatorError(.timedOut, "'\(deviceId)' did not answer '\(name)' in time")
        } catch {
            throw EmulatorError(.deviceNotConnected, "'\(deviceId)' is not connected or not subscribed to methods")
        }
    }

    /// Patches desired properties (JSON merge patch) and pushes the patch to the device; returns the new version.
    @discardableResult
    public func updateDesiredProperties(deviceId: String, moduleId: String? = nil, patch: JSONValue)
        async throws(EmulatorError) -> Int
    {
        guard let version = await self.hub.patchDesired(IdentityName(deviceId: deviceId, moduleId: moduleId), patch)
        else {
            throw EmulatorError(.unknownIdentity, "no identity '\(deviceId)'")
        }
        return version
    }

    /// Device file uploads: the grants the hub gave, what was written and what devices notified.
    public func fileUploads() async -> [FileUploadRecord] { await self.blobs.records }

    /// Makes the blob endpoint fail the next `count` Put Block requests with 500, as a storage hiccup would.
    public func failNextBlobBlocks(_ count: Int) async { await self.blobs.injectBlockFailures(count) }

    // MARK: - Faults

    /// Changes the fault plan.
    public func injectFaults(_ change: @Sendable (inout FaultPlan) -> Void) async {
        await self.hub.updateFaults(change)
    }

    /// The fault plan in force (counters go down as faults are used).
    public func faults() async -> FaultPlan { await self.hub.faults }

    /// Closes the identity's connection, as a network drop would.
    public func dropConnection(deviceId: String, moduleId: String? = nil) async {
        await self.hub.drop(IdentityName(deviceId: deviceId, moduleId: moduleId), reason: "dropped by fault injection")
    }

    /// Expires the identity's tokens now: its connection is closed and every token it presented so far is refused
    /// from then on; a client that signs a new token gets back in.
    public func expireTokens(deviceId: String, moduleId: String? = nil) async {
        await self.hub.expireTokens(IdentityName(deviceId: deviceId, moduleId: moduleId))
    }

    // MARK: - Helpers

    private func poll<T: Sendable>(timeout: Duration, what: String, _ check: @Sendable () async -> T?) async throws -> T
    {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let value = await check() { return value }
            guard ContinuousClock.now < deadline else {
                throw EmulatorError(.timedOut, "timed out waiting for \(what)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The CA: kept in the data directory (made there at the first start), or new for each start without one.
    private static func certificateAuthority(in directory: String?) throws(EmulatorError) -> CertificateAuthority {
        let commonName = "Azure IoT Emulator Root CA"
        guard let directory else {
            do throws(AzureIoTError) {
                return try CertificateAuthority(commonName: commonName, validityDays: 3_650)
            } catch {
                throw EmulatorError(.startFailed, "cannot make the CA: \(error.message)")
            }
        }
        let certificatePath = (directory as NSString).appendingPathComponent("ca-certificate.pem")
        let keyPath = (directory as NSString).appendingPathComponent("ca-key.pem")
        if let certificate = FileManager.default.contents(atPath: certificatePath),
            let key = FileManager.default.contents(atPath: keyPath)
        {
            do throws(AzureIoTError) {
                return try CertificateAuthority(
                    certificatePEM: String(decoding: certificate, as: UTF8.self),
                    privateKeyPEM: String(decoding: key, as: UTF8.self)
                )
            } catch {
                throw EmulatorError(.startFailed, "cannot read the CA in '\(directory)': \(error.message)")
            }
        }
        let authority: CertificateAuthority
        do throws(AzureIoTError) {
            authority = try CertificateAuthority(commonName: commonName, validityDays: 3_650)
        } catch {
            throw EmulatorError(.startFailed, "cannot make the CA: \(error.message)")
        }
        guard
            FileManager.default.createFile(
                atPath: keyPath,
                contents: Data(authority.privateKeyPEM.utf8),
                attributes: [.posixPermissions: 0o600]
            ),
            FileManager.default.createFile(atPath: certificatePath, contents: Data(authority.certificatePEM.utf8))
        else {
            throw EmulatorError(.startFailed, "cannot write the CA to '\(directory)'")
        }
        return authority
    }

    /// The CAs of the configuration's X.509 enrollment groups and CA-signed devices.
    private static func verifiedCertificateAuthorities(_ configuration: EmulatorConfiguration) throws(AzureIoTError)
        -> [X509Certificate]
    {
        var authorities: [X509Certificate] = []
        for group in configuration.provisioning.enrollmentGroups {
            if let pem = group.caCertificatePEM {
                authorities += try X509Certificate.certificates(fromPEM: pem)
            } else if let file = group.caCertificateFile {
                authorities += try X509Certificate.certificates(fromPEMFile: file)
            }
        }
        for device in configuration.devices {
            if let pem = device.x509CertificateAuthorityPEM {
                authorities += try X509Certificate.certificates(fromPEM: pem)
            }
        }
        return authorities
    }

    /// The keys of a filled configuration, as the data directory keeps them.
    private static func keys(of configuration: EmulatorConfiguration) -> JSONValue {
        var devices: [String: JSONValue] = [:]
        var modules: [String: JSONValue] = [:]
        for device in configuration.devices {
            if let key = device.primaryKey { devices[device.deviceId] = .string(key) }
            for module in device.modules ?? [] {
                if let key = module.primaryKey { modules["\(device.deviceId)/\(module.moduleId)"] = .string(key) }
            }
        }
        var individual: [String: JSONValue] = [:]
        for enrollment in configuration.provisioning.individualEnrollments {
            if let key = enrollment.primaryKey { individual[enrollment.registrationId] = .string(key) }
        }
        var groups: [String: JSONValue] = [:]
        for group in configuration.provisioning.enrollmentGroups {
            if let key = group.primaryKey { groups[group.name] = .string(key) }
        }
        var policies: [String: JSONValue] = [:]
        for policy in configuration.sharedAccessPolicies {
            policies[policy.keyName] = .array(
                [policy.primaryKey, policy.secondaryKey].map { $0.map(JSONValue.string) ?? .null }
            )
        }
        return [
            "devices": .object(devices), "modules": .object(modules), "individualEnrollments": .object(individual),
            "enrollmentGroups": .object(groups), "policies": .object(policies),
        ]
    }

    /// Fills keys the configuration leaves out with those an earlier start generated.
    private static func reuseKeys(_ keys: JSONValue, in configuration: inout EmulatorConfiguration) {
        for index in configuration.devices.indices {
            let device = configuration.devices[index]
            if device.primaryKey == nil && device.x509Thumbprint == nil && device.x509CertificateAuthorityPEM == nil {
                configuration.devices[index].primaryKey = keys["devices"]?[device.deviceId]?.stringValue
            }
            for module in (device.modules ?? []).indices where device.modules?[module].primaryKey == nil {
                let name = "\(device.deviceId)/\(device.modules?[module].moduleId ?? "")"
                configuration.devices[index].modules?[module].primaryKey = keys["modules"]?[name]?.stringValue
            }
        }
        for index in configuration.provisioning.individualEnrollments.indices {
            let enrollment = configuration.provisioning.individualEnrollments[index]
            if enrollment.primaryKey == nil && enrollment.certificateThumbprint == nil {
                configuration.provisioning.individualEnrollments[index].primaryKey =
                    keys["individualEnrollments"]?[enrollment.registrationId]?.stringValue
            }
        }
        for index in configuration.provisioning.enrollmentGroups.indices {
            let group = configuration.provisioning.enrollmentGroups[index]
            if group.primaryKey == nil && group.caCertificatePEM == nil && group.caCertificateFile == nil {
                configuration.provisioning.enrollmentGroups[index].primaryKey =
                    keys["enrollmentGroups"]?[group.name]?.stringValue
            }
        }
        for index in configuration.sharedAccessPolicies.indices {
            guard case .array(let stored)? = keys["policies"]?[configuration.sharedAccessPolicies[index].keyName],
                stored.count == 2
            else { continue }
            if configuration.sharedAccessPolicies[index].primaryKey == nil {
                configuration.sharedAccessPolicies[index].primaryKey = stored[0].stringValue
            }
            if configuration.sharedAccessPolicies[index].secondaryKey == nil {
                configuration.sharedAccessPolicies[index].secondaryKey = stored[1].stringValue
            }
        }
    }

    private static func fillKeys(_ configuration: inout EmulatorConfiguration) {
        func randomKey() -> String { Base64.encode((0..<32).map { _ in UInt8.random(in: 0...255) }) }
        for index in configuration.devices.indices {
            let device = configuration.devices[index]
            if device.primaryKey == nil && device.x509Thumbprint == nil && device.x509CertificateAuthorityPEM == nil {
                configuration.devices[index].primaryKey = randomKey()
            }
            for module in (configuration.devices[index].modules ?? []).indices
            where configuration.devices[index].modules?[module].primaryKey == nil {
                configuration.devices[index].modules?[module].primaryKey = randomKey()
            }
        }
        for index in configuration.sharedAccessPolicies.indices {
            if configuration.sharedAccessPolicies[index].primaryKey == nil {
                configuration.sharedAccessPolicies[index].primaryKey = randomKey()
            }
            if configuration.sharedAccessPolicies[index].secondaryKey == nil {
                configuration.sharedAccessPolicies[index].secondaryKey = randomKey()
            }
        }
        for index in configuration.provisioning.individualEnrollments.indices {
            let enrollment = configuration.provisioning.individualEnrollments[index]
            if enrollment.primaryKey == nil && enrollment.certificateThumbprint == nil {
                configuration.provisioning.individualEnrollments[index].primaryKey = randomKey()
            }
        }
        for index in configuration.provisioning.enrollmentGroups.indices {
            let group = configuration.provisioning.enrollmentGroups[index]
            if group.primaryKey == nil && group.caCertificatePEM == nil && group.caCertificateFile == nil {
                configuration.provisioning.enrollmentGroups[index].primaryKey = randomKey()
            }
        }
    }

    private static func stateDirectory(_ configuration: EmulatorConfiguration) throws(EmulatorError) -> String {
        let path =
            configuration.stateDirectory
            ?? (NSTemporaryDirectory() as NSString).appendingPathComponent(
                "azure-iot-emulator-\(UUID().uuidString.prefix(8))"
            )
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw EmulatorError(.startFailed, "cannot create the state directory '\(path)'")
        }
        return path
    }

    private static func endpoints(
        _ configuration: EmulatorConfiguration,
        caPath: String,
        dps: Int,
        mqtt: Int,
        amqp: Int,
        webSockets: Int,
        dpsMQTT: Int,
        dpsWebSockets: Int,
        service: Int,
        amqpPlain: Int?,
        blob: Int
    ) -> EmulatorEndpoints {
        let host = configuration.listenAddress
        let gateway = host == "127.0.0.1" || host == "0.0.0.0" ? "localhost" : host
        var devices: [EmulatorEndpoints.DeviceCredentials] = []
        for device in configuration.devices {
            let credential = device.primaryKey.map { "SharedAccessKey=\($0)" } ?? "x509=true"
            devices.append(
                .init(
                    deviceId: device.deviceId,
                    moduleId: nil,
                    primaryKey: device.primaryKey,
                    connectionString:
                        "HostName=\(configuration.hubHost);DeviceId=\(device.deviceId);\(credential);GatewayHostName=\(gateway)"
                )
            )
            for module in device.modules ?? [] {
                devices.append(
                    .init(
                        deviceId: device.deviceId,
                        moduleId: module.moduleId,
                        primaryKey: module.primaryKey,
                        connectionString:
                            "HostName=\(configuration.hubHost);DeviceId=\(device.deviceId);ModuleId=\(module.moduleId);SharedAccessKey=\(module.primaryKey ?? "");GatewayHostName=\(gateway)"
                    )
                )
            }
        }
        let enrollments =
            configuration.provisioning.individualEnrollments.map {
                EmulatorEndpoints.EnrollmentCredentials(
                    name: $0.registrationId,
                    kind: "individual",
                    primaryKey: $0.primaryKey
                )
            }
            + configuration.provisioning.enrollmentGroups.map {
                EmulatorEndpoints.EnrollmentCredentials(name: $0.name, kind: "group", primaryKey: $0.primaryKey)
            }
        let policies = configuration.sharedAccessPolicies.map {
            EmulatorEndpoints.PolicyCredentials(
                keyName: $0.keyName,
                rights: $0.rights.description,
                primaryKey: $0.primaryKey ?? "",
                secondaryKey: $0.secondaryKey ?? "",
                connectionString:
                    "HostName=\(gateway):\(service);SharedAccessKeyName=\($0.keyName);SharedAccessKey=\($0.primaryKey ?? "")"
            )
        }
        let owner = policies.first { $0.keyName == "iothubowner" } ?? policies.first
        return EmulatorEndpoints(
            hubName: configuration.hubName,
            hubHost: configuration.hubHost,
            dps: .init(host: host, port: dps),
            dpsMQTT: .init(host: host, port: dpsMQTT),
            dpsWebSockets: .init(host: host, port: dpsWebSockets),
            mqtt: .init(host: host, port: mqtt),
            amqp: .init(host: host, port: amqp),
            amqpPlain: amqpPlain.map { .init(host: host, port: $0) },
            webSockets: .init(host: host, port: webSockets),
            service: .init(host: host, port: service),
            blob: .init(host: host, port: blob),
            serviceConnectionString: (policies.first { $0.keyName == "iothubowner" } ?? policies.first)?
                .connectionString,
            sharedAccessPolicies: policies,
            eventHub: EmulatorEndpoints.EventHubEndpoint(
                name: configuration.hubName,
                partitionCount: configuration.eventHub.partitionCount,
                consumerGroups: ["$Default"] + configuration.eventHub.consumerGroups,
                connectionString: owner.map {
                    "Endpoint=sb://\(gateway):\(amqp)/;SharedAccessKeyName=\($0.keyName);SharedAccessKey=\($0.primaryKey);EntityPath=\(configuration.hubName)"
                },
                developmentConnectionString: amqpPlain.flatMap { port in
                    owner.map {
                        "Endpoint=sb://\(gateway):\(port);SharedAccessKeyName=\($0.keyName);SharedAccessKey=\($0.primaryKey);EntityPath=\(configuration.hubName);UseDevelopmentEmulator=true"
                    }
                }
            ),
            caCertificatePath: caPath,
            idScope: configuration.provisioning.idScope,
            enrollments: enrollments,
            devices: devices
        )
    }
}
