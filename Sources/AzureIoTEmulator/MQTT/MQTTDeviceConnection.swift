import AzureIoTCore
import Foundation
import HubMQTT
import Logging

/// One device's MQTT connection to the emulated hub: checks CONNECT as IoT Hub does (CONNACK 5 for every refusal,
/// injected ones included), then serves telemetry, twin,
/// method and cloud-to-device traffic, enforcing keep-alive (1.5 × the client's), the documented topics, QoS ≤ 1,
/// 256 KB messages, 5 subscriptions and the token's expiry.
actor MQTTDeviceConnection: DeviceLink {
    nonisolated let linkId: UInt64
    private let connection: TLSConnection
    private let hub: EmulatedHub
    private let logger: Logger
    private let outbound: TLSWriteQueue
    private var identity = IdentityName(deviceId: "")
    private var subscriptions: Set<DeviceSubscription> = []
    private var nextPacketId: UInt16 = 0
    private var cloudToDeviceInFlight: [UInt16: String] = [:]
    /// Module input messages published and not yet acknowledged, by packet id.
    private var inputsInFlight: [UInt16: UInt64] = [:]
    private var closed = false
    private var expiryTask: Task<Void, Never>?

    static let maximumMessageSize = 256 * 1024

    private let limits: EmulatorLimits

    init(
        connection: TLSConnection,
        hub: EmulatedHub,
        linkId: UInt64,
        limits: EmulatorLimits = EmulatorLimits(),
        logger: Logger
    ) {
        self.connection = connection
        self.hub = hub
        self.linkId = linkId
        self.limits = limits
        self.logger = logger
        self.outbound = TLSWriteQueue(connection: connection, maximumPendingBytes: limits.maximumPendingWriteBytes)
    }

    /// Serves the connection until it ends.
    func run() async {
        var buffer: [UInt8] = []
        let framer = MQTTFramer(maximumPacketSize: Self.maximumMessageSize + 64 * 1024)
        do {
            // Before it has authenticated, a client gets a small packet size and the handshake's time to send CONNECT.
            let unauthenticated = MQTTFramer(maximumPacketSize: self.limits.maximumBufferedBytesBeforeAuthentication)
            let first = try await self.readPacket(
                &buffer,
                framer: unauthenticated,
                timeout: .seconds(self.limits.handshakeTimeoutSeconds)
            )
            guard case .connect(let connect) = first else {
                return await self.close(because: "the first packet was not CONNECT")
            }
            let keepAlive = connect.keepAliveSeconds
            guard try await self.accept(connect) else { return }
            let timeout: Duration? = keepAlive == 0 ? nil : .milliseconds(Int(keepAlive) * 1500)
            var answers = AnswerBatch()
            while !self.closed {
                let packet = try await self.readPacket(&buffer, framer: framer, timeout: timeout)
                // A PUBLISH with more packets already sent (a client's batch of telemetry): the PUBACKs go out
                // together, the last one's included, once the last one that has arrived is handled (8 at most).
                var batched = false
                if case .publish = packet {
                    batched = answers.holdAnswer(moreArrived: self.anotherPacketArrived(&buffer, framer: framer))
                    self.outbound.hold(true)
                } else {
                    answers.released()
                    self.outbound.hold(false)
                }
                try await self.handle(packet)
                if !batched { self.outbound.hold(false) }
            }
        } catch let error as AzureIoTError where error.code == .timedOut {
            await self.close(because: "no packet within 1.5 × keep-alive")
        } catch {
            await self.close(because: "\(error)")
        }
    }

    /// Whether a whole packet follows, in `buffer` or already arrived on the socket (taken without waiting): a
    /// client's PUBLISHes written one record at a time still get their PUBACKs in one record.
    private func anotherPacketArrived(_ buffer: inout [UInt8], framer: MQTTFramer) -> Bool {
        if (try? framer.nextFrame(in: buffer[...])) != nil { return true }
        // A failure or a close is left for the next read to report.
        guard case .done(let bytes) = try? self.connection.readNow(maxBytes: 64 * 1024), !bytes.isEmpty else {
            return false
        }
        buffer += bytes
        return (try? framer.nextFrame(in: buffer[...])) != nil
    }

    private func readPacket(_ buffer: inout [UInt8], framer: MQTTFramer, timeout: Duration?) async throws -> MQTTPacket
    {
        while true {
            if let frame = try framer.nextFrame(in: buffer[...]) {
                let packet = try MQTTPacket.decode(firstByte: frame.firstByte, body: buffer[frame.body])
                buffer.removeSubrange(0..<frame.end)
                return packet
            }
            let bytes = try await self.connection.read(maxBytes: 64 * 1024, timeout: timeout)
            guard !bytes.isEmpty else { throw AzureIoTError(.connectionClosed, "the device closed the connection") }
            buffer += bytes
        }
    }

    // MARK: - CONNECT

    private func accept(_ connect: ConnectPacket) async throws -> Bool {
        let parts = connect.clientId.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (1...2).contains(parts.count), parts.allSatisfy({ !$0.isEmpty }) else {
            return await self.refuse(
                .notAuthorized,
                "client id '\(connect.clientId)' is not {device} or {device}/{module}"
            )
        }
        let name = IdentityName(deviceId: parts[0], moduleId: parts.count == 2 ? parts[1] : nil)
        let hubHost = self.hub.hubHost
        guard let text = connect.username else {
            return await self.refuse(.notAuthorized, "no username; expected '\(hubHost)/\(name)/?api-version=…'")
        }
        let username: MQTTUsername
        do {
            username = try MQTTUsername(parsing: text)
        } catch {
            return await self.refuse(
                .notAuthorized,
                "\(error.description), e.g. '\(hubHost)/\(name)/?api-version=2021-04-12'"
            )
        }
        // Host names compare without regard to case (DNS); device and module ids are case-sensitive in IoT Hub.
        guard username.hubHost.lowercased() == hubHost.lowercased() else {
            return await self.refuse(.notAuthorized, "the username names hub '\(username.hubHost)', not '\(hubHost)'")
        }
        guard username.identity == name else {
            return await self.refuse(
                .notAuthorized,
                "the username names '\(username.identity)' but the client id is '\(name)'"
            )
        }
        do {
            if let password = connect.password, !password.isEmpty {
                let expiry = try await self.hub.authenticate(name, token: String(decoding: password, as: UTF8.self))
                self.scheduleExpiry(expiry)
            } else {
                try await self.hub.authenticate(name, certificates: self.connection.peerCertificateChain)
            }
        } catch {
            return await self.refuse(.notAuthorized, error.description)
        }
        self.identity = name
        await self.hub.recordModelId(username.properties["model-id"], for: name)
        self.outbound.send(try MQTTPacket.connack(ConnAckPacket(returnCode: .accepted)).encoded())
        await self.hub.attach(self, as: name)
        self.logger.info("device connected over MQTT", metadata: ["identity": "\(name)"])
        return true
    }

    private func refuse(_ code: ConnAckPacket.ReturnCode, _ reason: String) async -> Bool {
        self.logger.info("CONNECT refused", metadata: ["reason": "\(reason)", "code": "\(code.rawValue)"])
        if let bytes = try? MQTTPacket.connack(ConnAckPacket(returnCode: code)).encoded() { self.outbound.send(bytes) }
        await self.close(because: reason)
        return false
    }

    private func scheduleExpiry(_ expiry: UInt64) {
        let now = UnixTime.now()
        let seconds = expiry > now ? expiry - now : 0
        self.expiryTask = Task { [weak self] in
            try? await Task.sleep(for: .seconds(Int64(min(seconds, 365 * 86_400))))
            guard !Task.isCancelled else { return }
            await self?.terminate(reason: "the SAS token expired")
        }
    }

    // MARK: - Packets

    private func handle(_ packet: MQTTPacket) async throws {
        switch packet {
        case .publish(let publish):
            try await self.handlePublish(publish)
        case .puback(let packetId):
            if let messageId = self.cloudToDeviceInFlight.removeValue(forKey: packetId) {
                await self.hub.settleCloudToDevice(messageId: messageId, as: .completed)
            } else if let inputId = self.inputsInFlight.removeValue(forKey: packetId) {
                await self.hub.completeModuleInput(self.identity, id: inputId)
            }
        case .subscribe(let subscribe):
            var codes: [SubAckPacket.ReturnCode] = []
            for subscription in subscribe.subscriptions {
                guard let kind = DeviceSubscription(filter: subscription.topicFilter, identity: self.identity) else {
                    return await self.close(because: "subscribing to '\(subscription.topicFilter)' is not allowed")
                }
                self.subscriptions.insert(kind)
                codes.append(subscription.qos == .atMostOnce ? .grantedQoS0 : .grantedQoS1)
            }
            guard self.subscriptions.count <= 5 else { return await self.close(because: "more than 5 subscriptions") }
            self.outbound.send(
                try MQTTPacket.suback(SubAckPacket(packetId: subscribe.packetId, returnCodes: codes)).encoded()
            )
            if self.subscriptions.contains(.cloudToDevice) {
                Task { await self.hub.pumpCloudToDevice(deviceId: self.identity.deviceId) }
            }
            if self.subscriptions.contains(.moduleInputs) {
                let identity = self.identity
                Task { await self.hub.pumpModuleInputs(identity) }
            }
        case .unsubscribe(let unsubscribe):
            for filter in unsubscribe.topicFilters {
                if let kind = DeviceSubscription(filter: filter, identity: self.identity) {
                    self.subscriptions.remove(kind)
                }
            }
            self.outbound.send(try MQTTPacket.unsuback(packetId: unsubscribe.packetId).encoded())
        case .pingreq:
            self.outbound.send(try MQTTPacket.pingresp.encoded())
        case .disconnect:
            await self.close(because: "the device disconnected")
        case .pubrel, .pubrec, .pubcomp:
            await self.close(because: "QoS 2 is not supported")
        case .connect:
            await self.close(because: "a second CONNECT")
        case .connack, .suback, .unsuback, .pingresp:
            await self.close(because: "a server-only packet from the device")
        }
    }

    private func handlePublish(_ publish: PublishPacket) async throws {
        guard publish.qos != .exactlyOnce else { return await self.close(because: "QoS 2 PUBLISH") }
        guard publish.topic.utf8.count <= self.limits.maximumTopicBytes else {
            return await self.close(because: "a topic name above \(self.limits.maximumTopicBytes) bytes")
        }
        guard let route = DevicePublishRoute(topic: publish.topic, identity: self.identity) else {
            return await self.close(because: "publishing to '\(publish.topic)' is not allowed")
        }
        switch route {
        case .telemetry(let bagText):
            // IoT Hub counts system and application properties into a message's 256 KB.
            guard publish.payload.count + bagText.utf8.count <= Self.maximumMessageSize else {
                return await self.close(because: "a message above 256 KB")
            }
            guard let bag = try? PropertyBag(parsing: bagText) else {
                return await self.close(because: "a malformed property bag")
            }
            await self.hub.record(
                Self.telemetry(
                    from: bag,
                    body: publish.payload,
                    identity: self.identity,
                    overWebSockets: self.connection.isWebSocket
                )
            )
            if let packetId = publish.packetId { await self.acknowledge(packetId) }
        case .twinGet(let rid):
            let twin = await self.hub.twin(self.identity)
            self.publishToDevice(
                "$iothub/twin/res/\(twin == nil ? 404 : 200)/?$rid=\(rid)",
                twin?.deviceDocument.jsonBytes ?? []
            )
            if let packetId = publish.packetId {
                self.outbound.send(try MQTTPacket.puback(packetId: packetId).encoded())
            }
        case .reportedPatch(let rid):
            if let patch = (try? JSONValue(parsing: publish.payload)), case .object = patch,
                let version = await self.hub.patchReported(self.identity, patch)
            {
                self.publishToDevice("$iothub/twin/res/204/?$rid=\(rid)&$version=\(version)", [])
            } else {
                self.publishToDevice("$iothub/twin/res/400/?$rid=\(rid)", [])
            }
            if let packetId = publish.packetId {
                self.outbound.send(try MQTTPacket.puback(packetId: packetId).encoded())
            }
        case .methodResponse(let status, let rid):
            await self.hub.completeMethod(
                requestId: rid,
                response: MethodResponse(status: status, payload: publish.payload)
            )
            if let packetId = publish.packetId {
                self.outbound.send(try MQTTPacket.puback(packetId: packetId).encoded())
            }
        }
    }

    private func acknowledge(_ packetId: UInt16) async {
        let faults = await self.hub.faults
        guard !faults.withholdAcknowledgements else { return }
        guard let bytes = try? MQTTPacket.puback(packetId: packetId).encoded() else { return }
        if faults.acknowledgementDelay > .zero {
            let outbound = self.outbound
            Task {
                try? await Task.sleep(for: faults.acknowledgementDelay)
                outbound.send(bytes)
            }
        } else {
            self.outbound.send(bytes)
        }
    }

    /// Maps a property bag to a telemetry record: `$.`-keys to system properties, the rest custom.
    static func telemetry(
        from bag: PropertyBag,
        body: [UInt8],
        identity: IdentityName,
        overWebSockets: Bool = false
    ) -> ReceivedTelemetry {
        var system: [String: String] = [:]
        var custom: [String: String] = [:]
        for pair in bag.pairs {
            if pair.key.hasPrefix("$.") {
                system[String(pair.key.dropFirst(2))] = pair.value ?? ""
            } else {
                custom[pair.key] = pair.value ?? ""
            }
        }
        let record = ReceivedTelemetry(
            deviceId: identity.deviceId,
            moduleId: identity.moduleId,
            transport: .mqtt,
            overWebSockets: overWebSockets,
            body: body,
            contentType: system.removeValue(forKey: "ct"),
            contentEncoding: system.removeValue(forKey: "ce"),
            messageId: system.removeValue(forKey: "mid"),
            correlationId: system.removeValue(forKey: "cid"),
            userId: system.removeValue(forKey: "uid"),
            systemProperties: system,
            properties: custom,
            receivedAt: Date()
        )
        return record
    }

    private func publishToDevice(_ topic: String, _ payload: [UInt8], qos: MQTTQoS = .atMostOnce) {
        var packetId: UInt16?
        if qos == .atLeastOnce { packetId = self.allocatePacketId() }
        guard
            let bytes = try? MQTTPacket.publish(
                PublishPacket(topic: topic, payload: payload, qos: qos, packetId: packetId)
            ).encoded()
        else { return }
        self.outbound.send(bytes)
    }

    private func allocatePacketId() -> UInt16 {
        repeat {
            self.nextPacketId = self.nextPacketId == .max ? 1 : self.nextPacketId + 1
        } while self.cloudToDeviceInFlight[self.nextPacketId] != nil || self.inputsInFlight[self.nextPacketId] != nil
        return self.nextPacketId
    }

    // MARK: - DeviceLink

    func offer(_ message: CloudToDeviceRecord) async -> Bool {
        guard !self.closed, self.subscriptions.contains(.cloudToDevice), self.cloudToDeviceInFlight.count < 50 else {
            return false
        }
        var pairs: [(key: String, value: String?)] = [
            ("$.mid", message.messageId),
            ("$.to", "/devices/\(message.deviceId)/messages/deviceBound"),
        ]
        if let correlationId = message.correlationId { pairs.append(("$.cid", correlationId)) }
        if let contentType = message.contentType { pairs.append(("$.ct", contentType)) }
        if let contentEncoding = message.contentEncoding { pairs.append(("$.ce", contentEncoding)) }
        if let expiry = message.expiresAt { pairs.append(("$.exp", ProvisioningService.timestamp(expiry))) }
        if let ack = message.acknowledgement { pairs.append(("iothub-ack", ack)) }
        pairs += message.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let packetId = self.allocatePacketId()
        let topic = "devices/\(message.deviceId)/messages/devicebound/\(PropertyBag(pairs).encoded)"
        guard
            let bytes = try? MQTTPacket.publish(
                PublishPacket(
                    topic: topic,
                    payload: message.body,
                    qos: .atLeastOnce,
                    duplicate: message.deliveryCount > 1,
                    packetId: packetId
                )
            ).encoded()
        else { return false }
        self.cloudToDeviceInFlight[packetId] = message.messageId
        self.outbound.send(bytes)
        return true
    }

    func offerInput(_ message: ModuleInputRecord) async -> Bool {
        guard !self.closed, message.target == self.identity, self.subscriptions.contains(.moduleInputs),
            self.inputsInFlight.count < 50, let module = self.identity.moduleId
        else { return false }
        // edgeHub's topic: the input's name, then the property bag with system properties first.
        var pairs: [(key: String, value: String?)] = message.systemProperties.sorted { $0.key < $1.key }.map {
            ("$.\($0.key)", $0.value)
        }
        pairs += message.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        let input = PercentEncoding.encode(message.inputName)
        let topic = "devices/\(self.identity.deviceId)/modules/\(module)/inputs/\(input)/\(PropertyBag(pairs).encoded)"
        let packetId = self.allocatePacketId()
        guard
            let bytes = try? MQTTPacket.publish(
                PublishPacket(topic: topic, payload: message.body, qos: .atLeastOnce, packetId: packetId)
            ).encoded()
        else { return false }
        self.inputsInFlight[packetId] = message.id
        self.outbound.send(bytes)
        return true
    }

    func pushDesired(_ patch: JSONValue, version: Int, to identity: IdentityName) async {
        guard self.subscriptions.contains(.desiredPatches) else { return }
        var members = patch.objectValue
        members["$version"] = .number(JSONNumber(version))
        self.publishToDevice(
            "$iothub/twin/PATCH/properties/desired/?$version=\(version)",
            JSONValue.object(members).jsonBytes
        )
    }

    func requestMethod(name: String, payload: [UInt8], requestId: String, to identity: IdentityName) async -> Bool {
        guard self.subscriptions.contains(.methods) else { return false }
        self.publishToDevice("$iothub/methods/POST/\(name)/?$rid=\(requestId)", payload)
        return true
    }

    func terminate(reason: String) async { await self.close(because: reason) }

    func release(_ identity: IdentityName, reason: String) async { await self.close(because: reason) }

    private func close(because reason: String) async {
        guard !self.closed else { return }
        self.closed = true
        self.expiryTask?.cancel()
        let reason =
            self.outbound.overflowed
            ? "the client did not read: over \(self.limits.maximumPendingWriteBytes) bytes were waiting" : reason
        self.logger.info("MQTT connection closed", metadata: ["identity": "\(self.identity)", "reason": "\(reason)"])
        await self.outbound.finish()
        self.connection.close()
        if !self.identity.deviceId.isEmpty { await self.hub.detach(self, as: self.identity) }
    }
}
