import AzureIoTCore
import Foundation
import HubAMQP
import HubMQTT
import WebSocketCodec

/// One case: the byte chunks written, in order, to one TLS connection of one port.
struct FuzzCase {
    var `protocol`: Protocol
    var chunks: [[UInt8]]

    static func make(_ random: inout SplitMix64, target: EmulatorProcess) -> FuzzCase {
        let proto = Protocol.allCases.randomElement(using: &random)!
        var chunks: [[UInt8]]
        switch proto {
        case .mqtt: chunks = MQTTCases.sequence(&random, target)
        case .amqp, .dpsAMQP: chunks = AMQPCases.sequence(&random, target)
        case .dps: chunks = DPSCases.sequence(&random, target)
        case .service: chunks = ServiceCases.sequence(&random, target)
        case .blob: chunks = BlobCases.sequence(&random, target)
        case .workload: chunks = WorkloadCases.sequence(&random, target)
        case .mqttWebSocket: chunks = MQTTCases.sequence(&random, target)
        case .amqpWebSocket: chunks = AMQPCases.sequence(&random, target)
        }
        // One case in eight goes out as built, to keep the valid paths exercised.
        if random.next() % 8 != 0 { Mutator.mutate(&chunks, &random) }
        if proto == .mqttWebSocket || proto == .amqpWebSocket {
            // The same protocol bytes inside a WebSocket; one case in four then has its upgrade request or frame
            // headers mutated too.
            chunks = WebSocketCases.wrap(chunks, subprotocol: proto == .mqttWebSocket ? "mqtt" : "AMQPWSB10", &random)
            if random.next() % 4 == 0 { Mutator.mutate(&chunks, &random) }
        }
        return FuzzCase(protocol: proto, chunks: chunks)
    }

    /// Connects, writes every chunk, reads what comes back for a moment, and closes. Nothing here fails the run:
    /// only the emulator's health does.
    func play(_ target: EmulatorProcess) async {
        if self.protocol == .workload {
            // Plain HTTP over the unix socket, bounded by socket time-outs (this tool's own thread may block).
            _ = UnixSocketClient.exchange(path: target.workloadSocket, self.chunks, readTimeoutMilliseconds: 100)
            return
        }
        let port =
            switch self.protocol {
            case .mqtt: target.mqttPort
            case .amqp: target.amqpPort
            case .dpsAMQP: target.dpsAMQPPort
            case .dps: target.dpsPort
            case .service: target.servicePort
            case .blob: target.blobPort
            case .workload: 0
            case .mqttWebSocket, .amqpWebSocket: target.webSocketPort
            }
        let chunks = self.chunks
        let trust = target.trust
        _ = try? await within(.seconds(10)) {
            let connection = try await TLSConnection.connect(host: "localhost", port: port, configuration: trust)
            defer { connection.close() }
            for chunk in chunks where !chunk.isEmpty {
                try await connection.write(chunk, timeout: .seconds(1))
            }
            for _ in 0..<3 {
                let bytes = try await connection.read(maxBytes: 64 * 1024, timeout: .milliseconds(100))
                if bytes.isEmpty { break }
            }
        }
    }
}

/// MQTT or AMQP bytes as a WebSocket client sends them: the upgrade request, then each chunk as a masked binary
/// frame (sometimes split into fragments, sometimes with a ping in between).
enum WebSocketCases {
    static func wrap(_ chunks: [[UInt8]], subprotocol: String, _ random: inout SplitMix64) -> [[UInt8]] {
        let offered = random.next() % 8 == 0 ? "chat, \(subprotocol.uppercased())" : subprotocol
        let request =
            "GET /$iothub/websocket HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + "Sec-WebSocket-Protocol: \(offered)\r\n\r\n"
        var wrapped = [Array(request.utf8)]
        for chunk in chunks {
            let key = (
                UInt8(truncatingIfNeeded: random.next()), UInt8(truncatingIfNeeded: random.next()),
                UInt8(truncatingIfNeeded: random.next()), UInt8(truncatingIfNeeded: random.next())
            )
            var frames: [UInt8] = []
            if chunk.count > 1 && random.next() % 4 == 0 {
                let split = 1 + Int(random.next() % UInt64(chunk.count - 1))
                Self.append(WebSocketFrame(fin: false, opcode: .binary, payload: Array(chunk[..<split])), key, &frames)
                if random.next() % 2 == 0 { Self.append(WebSocketFrame(opcode: .ping, payload: [1]), key, &frames) }
                Self.append(WebSocketFrame(opcode: .continuation, payload: Array(chunk[split...])), key, &frames)
            } else {
                Self.append(WebSocketFrame(opcode: .binary, payload: chunk), key, &frames)
            }
            wrapped.append(frames)
        }
        return wrapped
    }

    private static func append(
        _ frame: WebSocketFrame,
        _ key: (UInt8, UInt8, UInt8, UInt8),
        _ bytes: inout [UInt8]
    ) {
        // The frames built here are valid (control frames are short), so encoding does not fail.
        try? frame.encode(into: &bytes, maskingKey: key)
    }
}

/// Edge values for numeric fields.
enum Edge {
    static let uint32: [UInt32] = [0, 1, 2, 5, 100, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF]
    static let uint16: [UInt16] = [0, 1, 5, 60, 0x7FFF, 0xFFFF]

    static func uint32(_ random: inout SplitMix64) -> UInt32 {
        random.next() % 4 == 0 ? UInt32(truncatingIfNeeded: random.next()) : Self.uint32.randomElement(using: &random)!
    }

    static func size(_ random: inout SplitMix64) -> Int {
        [0, 1, 16, 300, 4096, 70_000, 300_000].randomElement(using: &random)!
    }

    static func bytes(_ count: Int, _ random: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }
}

enum MQTTCases {
    static func sequence(_ random: inout SplitMix64, _ target: EmulatorProcess) -> [[UInt8]] {
        let device = EmulatorProcess.deviceId
        let authenticated = random.next() % 10 < 7
        let username =
            authenticated
            ? [
                "\(target.hubHost)/\(device)/?api-version=2021-04-12",
                "\(target.hubHost)/\(device)/api-version=2019-03-31",
            ].randomElement(using: &random)!
            : [
                "", "\(target.hubHost)/\(device)", "x/\(device)/?api-version=2021-04-12",
                String(repeating: "u", count: 70_000),
            ].randomElement(using: &random)!
        let password = authenticated ? Array(target.deviceToken().utf8) : Edge.bytes(Int(random.next() % 64), &random)
        let clientId =
            random.next() % 10 == 0
            ? ["", "\(device)/m", "\(device)/m/x", String(repeating: "c", count: 300)].randomElement(using: &random)!
            : device
        var packets: [MQTTPacket] = [
            .connect(
                ConnectPacket(
                    clientId: clientId,
                    cleanSession: random.next() % 2 == 0,
                    keepAliveSeconds: Edge.uint16.randomElement(using: &random)!,
                    username: username,
                    password: password
                )
            )
        ]
        let topics = [
            "devices/\(device)/messages/events/", "devices/\(device)/messages/events",
            "devices/\(device)/messages/events/$.ct=application%2Fjson&$.ce=utf-8&k=v",
            "devices/\(device)/messages/events/%24.mid=1&%ZZ", "devices/other/messages/events/",
            "$iothub/twin/GET/?$rid=1", "$iothub/twin/PATCH/properties/reported/?$rid=2",
            "$iothub/methods/res/200/?$rid=3",
            "$iothub/methods/res/x/?$rid=", "$iothub/twin/GET/", "#",
            "devices/\(device)/messages/events/" + String(repeating: "a=b&", count: 5000),
        ]
        let filters = [
            "devices/\(device)/messages/devicebound/#", "$iothub/twin/res/#", "$iothub/methods/POST/#",
            "$iothub/twin/PATCH/properties/desired/#", "#", "devices/+/messages/devicebound/#", "",
        ]
        for _ in 0..<Int(random.next() % 8) {
            switch random.next() % 7 {
            case 0, 1:
                let qos = [MQTTQoS.atMostOnce, .atLeastOnce, .exactlyOnce].randomElement(using: &random)!
                let payload = random.next() % 3 == 0 ? Array(#"{"a":1}"#.utf8) : Edge.bytes(Edge.size(&random), &random)
                packets.append(
                    .publish(
                        PublishPacket(
                            topic: topics.randomElement(using: &random)!,
                            payload: payload,
                            qos: qos,
                            packetId: qos == .atMostOnce ? nil : UInt16(truncatingIfNeeded: random.next() | 1)
                        )
                    )
                )
            case 2:
                let count = 1 + Int(random.next() % 7)
                let subscriptions = (0..<count).map { _ in
                    SubscribePacket.Subscription(topicFilter: filters.randomElement(using: &random)!, qos: .atLeastOnce)
                }
                packets.append(
                    .subscribe(
                        SubscribePacket(
                            packetId: UInt16(truncatingIfNeeded: random.next() | 1),
                            subscriptions: subscriptions
                        )
                    )
                )
            case 3:
                packets.append(
                    .unsubscribe(UnsubscribePacket(packetId: 7, topicFilters: [filters.randomElement(using: &random)!]))
                )
            case 4: packets.append(.pingreq)
            case 5: packets.append(.puback(packetId: UInt16(truncatingIfNeeded: random.next())))
            default:
                packets.append(
                    [.disconnect, .pubrel(packetId: 1), .connack(ConnAckPacket(returnCode: .accepted))].randomElement(
                        using: &random
                    )!
                )
            }
        }
        return packets.compactMap { try? $0.encoded() }
    }
}

enum AMQPCases {
    static func frame(_ performative: AMQPPerformative, channel: UInt16 = 0, type: AMQPFrame.FrameType = .amqp)
        -> [UInt8]
    {
        guard let body = try? performative.encoded() else { return [] }
        return AMQPFrame(type: type, channel: channel, body: body).encoded
    }

    static func sequence(_ random: inout SplitMix64, _ target: EmulatorProcess) -> [[UInt8]] {
        let device = EmulatorProcess.deviceId
        var chunks: [[UInt8]] = [AMQPProtocolHeader.sasl.bytes]
        let plain = Array("\0\(device)@sas.\(EmulatorProcess.hubName)\0\(target.deviceToken())".utf8)
        let servicePlain = Array("\0iothubowner@sas.root.\(EmulatorProcess.hubName)\0\(target.serviceToken())".utf8)
        let mechanisms: [SASLInit] = [
            SASLInit(mechanism: "PLAIN", initialResponse: plain), SASLInit(mechanism: "ANONYMOUS"),
            SASLInit(mechanism: "PLAIN", initialResponse: servicePlain),
            SASLInit(mechanism: "MSSBCBS"),
            SASLInit(mechanism: "PLAIN", initialResponse: Array("\0x@sas.y\0z".utf8)), SASLInit(mechanism: "EXTERNAL"),
            SASLInit(mechanism: "X"),
            SASLInit(
                mechanism: "PLAIN",
                initialResponse: Array(
                    "\0\(EmulatorProcess.idScope)/registrations/\(EmulatorProcess.registrationId)\0\(target.registrationToken())"
                        .utf8
                )
            ),
        ]
        chunks.append(frame(.saslInit(mechanisms.randomElement(using: &random)!), type: .sasl))
        chunks.append(AMQPProtocolHeader.amqp.bytes)
        let idle: UInt32? = random.next() % 3 == 0 ? Edge.uint32(&random) : nil
        let maxFrame: UInt32? = random.next() % 3 == 0 ? Edge.uint32(&random) : 65_536
        chunks.append(
            frame(
                .open(
                    AMQPOpen(
                        containerId: "fuzz",
                        hostname: target.hubHost,
                        maxFrameSize: maxFrame,
                        channelMax: 0,
                        idleTimeOut: idle
                    )
                )
            )
        )
        chunks.append(
            frame(
                .begin(
                    AMQPBegin(
                        nextOutgoingId: Edge.uint32(&random),
                        incomingWindow: Edge.uint32(&random),
                        outgoingWindow: Edge.uint32(&random)
                    )
                )
            )
        )
        let addresses = [
            "/devices/\(device)/messages/events", "amqps://\(target.hubHost)/devices/\(device)/messages/events",
            "/devices/\(device)/messages/devicebound", "$cbs", "/devices/\(device)/modules/m/messages/events",
            "/devices/other/messages/events", "", "/messages/devicebound", "/messages/serviceBound/feedback",
            "$management", "\(EmulatorProcess.hubName)/ConsumerGroups/$Default/Partitions/0",
            "amqps://h/messages/events/ConsumerGroups/$default/Partitions/\(random.next() % 6)",
            "\(EmulatorProcess.hubName)/ConsumerGroups/none/Partitions/99999",
            // DPS over AMQP.
            "amqps://h/\(EmulatorProcess.idScope)/registrations/\(EmulatorProcess.registrationId)",
            "\(EmulatorProcess.idScope)/registrations/\(EmulatorProcess.registrationId)", "x/registrations/",
        ]
        let selectors = [
            "amqp.annotation.x-opt-offset > '-1'",
            "amqp.annotation.x-opt-sequence-number >= '\(Int64(bitPattern: random.next()))'",
            "amqp.annotation.x-opt-enqueued-time > '\(random.next())'", "amqp.annotation.x-opt-offset > '@latest'",
            "x > 'y", String(repeating: "'", count: 300),
        ]
        for _ in 0..<Int(random.next() % 10) {
            let handle = random.next() % 2 == 0 ? UInt32(random.next() % 4) : Edge.uint32(&random)
            switch random.next() % 8 {
            case 0, 1:
                let address = addresses.randomElement(using: &random)!
                let receiver = random.next() % 2 == 0
                chunks.append(
                    frame(
                        .attach(
                            AMQPAttach(
                                name: "l\(handle)",
                                handle: handle,
                                isReceiver: receiver,
                                source: AMQPTerminus(
                                    address: receiver ? address : "fuzz",
                                    otherFields: random.next() % 3 == 0
                                        ? Array(repeating: .null, count: 6) + [
                                            .map([
                                                AMQPMapEntry(
                                                    .symbol("apache.org:selector-filter:string"),
                                                    .described(
                                                        descriptor: .symbol("apache.org:selector-filter:string"),
                                                        value: .string(selectors.randomElement(using: &random)!)
                                                    )
                                                )
                                            ])
                                        ] : []
                                ),
                                target: AMQPTerminus(address: receiver ? "fuzz" : address),
                                initialDeliveryCount: receiver ? nil : Edge.uint32(&random)
                            )
                        )
                    )
                )
            case 2:
                chunks.append(
                    frame(
                        .flow(
                            AMQPFlow(
                                nextIncomingId: Edge.uint32(&random),
                                incomingWindow: Edge.uint32(&random),
                                nextOutgoingId: Edge.uint32(&random),
                                outgoingWindow: Edge.uint32(&random),
                                handle: handle,
                                deliveryCount: Edge.uint32(&random),
                                linkCredit: Edge.uint32(&random)
                            )
                        )
                    )
                )
            case 3, 4:
                var message = AMQPMessage(data: Edge.bytes(Edge.size(&random) % 70_000, &random))
                switch random.next() % 6 {
                case 0, 1:
                    message = AMQPMessage(value: .string(target.deviceToken()))
                    message.messageId = .string("m")
                    message.applicationProperties = [
                        ("operation", .string("put-token")), ("type", .string("azure-devices.net:sastoken")),
                        ("name", .string("\(target.hubHost)/devices/\(device)")),
                    ]
                case 2:
                    message = AMQPMessage(value: .string(target.serviceToken()))
                    message.messageId = .ulong(random.next())
                    message.applicationProperties = [
                        ("operation", .string("put-token")), ("type", .string("servicebus.windows.net:sastoken")),
                        (
                            "name",
                            .string(
                                ["https://\(target.hubHost)", "sb://h/\(EmulatorProcess.hubName)", "x://"]
                                    .randomElement(using: &random)!
                            )
                        ),
                    ]
                case 3:
                    // A cloud-to-device message from the service, or a $management request.
                    message.to = ["/devices/\(device)/messages/devicebound", "/devices/%zz/messages/devicebound", "/x"]
                        .randomElement(using: &random)!
                    message.applicationProperties = [
                        ("iothub-ack", .string("full")), ("operation", .string("READ")),
                        (
                            "type",
                            .string(
                                ["com.microsoft:eventhub", "com.microsoft:partition"].randomElement(using: &random)!
                            )
                        ),
                        ("name", .string(EmulatorProcess.hubName)), ("partition", .string(String(random.next() % 8))),
                    ]
                    message.absoluteExpiryTime = Int64(bitPattern: random.next())
                case 4:
                    // A DPS request.
                    message.correlationId =
                        random.next() % 2 == 0 ? .string("c\(random.next())") : .ulong(random.next())
                    message.applicationProperties = [
                        (
                            "iotdps-operation-type",
                            .string(
                                ["iotdps-register", "iotdps-get-operationstatus", "x"].randomElement(using: &random)!
                            )
                        ),
                        ("iotdps-operation-id", .string(["4.abc", "", "../x", "op"].randomElement(using: &random)!)),
                    ]
                    if random.next() % 2 == 0 {
                        message.data = Array(#"{"registrationId":"\#(EmulatorProcess.registrationId)"}"#.utf8)
                    }
                default:
                    break
                }
                let payload = (try? message.encoded()) ?? []
                chunks.append(
                    frame(
                        .transfer(
                            AMQPTransfer(
                                handle: handle,
                                deliveryId: Edge.uint32(&random),
                                deliveryTag: [1],
                                messageFormat: 0,
                                settled: random.next() % 2 == 0,
                                more: random.next() % 3 == 0
                            ),
                            payload: Array(payload.prefix(60_000))
                        )
                    )
                )
            case 5:
                chunks.append(
                    frame(
                        .disposition(
                            AMQPDisposition(
                                isReceiver: random.next() % 2 == 0,
                                first: Edge.uint32(&random),
                                last: random.next() % 2 == 0 ? Edge.uint32(&random) : nil,
                                settled: true,
                                state: .accepted
                            )
                        )
                    )
                )
            case 6:
                chunks.append(frame(.detach(AMQPDetach(handle: handle, closed: true))))
            default:
                chunks.append(
                    frame(
                        [
                            .end(AMQPEndOrClose()), .close(AMQPEndOrClose()),
                            .begin(AMQPBegin(nextOutgoingId: 0, incomingWindow: 1, outgoingWindow: 1)),
                        ].randomElement(using: &random)!,
                        channel: random.next() % 4 == 0 ? UInt16(truncatingIfNeeded: random.next()) : 0
                    )
                )
            }
        }
        return chunks
    }
}

enum DPSCases {
    static func sequence(_ random: inout SplitMix64, _ target: EmulatorProcess) -> [[UInt8]] {
        let base = "/\(EmulatorProcess.idScope)/registrations/\(EmulatorProcess.registrationId)"
        var requests: [[UInt8]] = []
        for _ in 0..<(1 + Int(random.next() % 3)) {
            let method = ["PUT", "GET", "POST", "DELETE", "PUT"].randomElement(using: &random)!
            let path = [
                base + "/register?api-version=2019-03-31", base + "/operations/4.x?api-version=2021-06-01",
                base + "?api-version=2021-06-01",
                base + "/register", "/other/registrations/x/register?api-version=1",
                "/" + String(repeating: "a/", count: 2000),
            ].randomElement(using: &random)!
            let body =
                random.next() % 4 == 0
                ? Edge.bytes(Edge.size(&random) % 100_000, &random)
                : Array(
                    #"{"registrationId":"\#(EmulatorProcess.registrationId)","payload":{"a":[1,2,{"b":null}]}}"#.utf8
                )
            var head =
                "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Encoding:  utf-8\r\n"
            if random.next() % 5 != 0 { head += "Authorization: \(target.registrationToken())\r\n" }
            if random.next() % 6 == 0 { head += "Expect: 100-continue\r\n" }
            var payload = body
            switch random.next() % 6 {
            case 0:
                head += "Transfer-Encoding: chunked\r\n"
                payload = Array(String(body.count, radix: 16).utf8) + [13, 10] + body + Array("\r\n0\r\n\r\n".utf8)
            case 1:
                head += "Content-Length: \(Edge.uint32(&random))\r\n"
            case 2:
                head += "X-Filler: \(String(repeating: "f", count: Int(random.next() % 20_000)))\r\n"
                head += "Content-Length: \(body.count)\r\n"
            default:
                head += "Content-Length: \(body.count)\r\n"
            }
            requests.append(Array((head + "\r\n").utf8) + payload)
        }
        return requests
    }
}

/// IoT Hub's service REST API: registry, twins, methods, query and statistics, with and without a token, with bodies
/// valid, broken, deep, huge or random.
enum ServiceCases {
    static func sequence(_ random: inout SplitMix64, _ target: EmulatorProcess) -> [[UInt8]] {
        // An existing device of its own: the service API may legitimately re-key, disable or delete it, which would
        // lock out the normal device the health check sends as.
        let device = ["fuzz-svc", "fuzz-new-\(random.next() % 4)", "%zz", String(repeating: "d", count: 200), "a/b"]
            .randomElement(using: &random)!
        let version = ["?api-version=2021-04-12", "", "?api-version=1999-01-01", "?api-version=2021-04-12&top=-1"]
            .randomElement(using: &random)!
        var requests: [[UInt8]] = []
        for _ in 0..<(1 + Int(random.next() % 3)) {
            let method = ["GET", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"].randomElement(using: &random)!
            let path =
                [
                    "/devices/\(device)", "/devices/\(device)/modules/m", "/devices/\(device)/modules", "/devices",
                    "/devices/query", "/twins/\(device)", "/twins/\(device)/methods",
                    "/twins/\(device)/modules/m/methods",
                    "/statistics/service", "/statistics/devices", "/devices/\(device)/commands", "/", "//devices",
                ].randomElement(using: &random)! + version
            let bodies: [[UInt8]] = [
                Array(#"{"deviceId":"\#(device)","status":"enabled","authentication":{"type":"sas"}}"#.utf8),
                Array(#"{"authentication":{"type":"selfSigned","x509Thumbprint":{"primaryThumbprint":"00"}}}"#.utf8),
                Array(#"{"tags":{"a":{"b":1}},"properties":{"desired":{"x":null,"y":[1,2]}}}"#.utf8),
                Array(
                    #"{"methodName":"m","payload":{"a":1},"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":0}"#
                        .utf8
                ),
                Array(
                    #"{"query":"SELECT * FROM devices WHERE (tags.a.b = 1 OR NOT status = 'x') AND deviceId > ''"}"#
                        .utf8
                ),
                Array((String(repeating: "[", count: 500) + String(repeating: "]", count: 500)).utf8),
                Array(#"{"query":"SELECT * FROM devices WHERE "#.utf8) + Edge.bytes(Int(random.next() % 200), &random),
                Edge.bytes(Edge.size(&random) % 100_000, &random),
                [],
            ]
            let body = bodies.randomElement(using: &random)!
            var head = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            if random.next() % 5 != 0 { head += "Authorization: \(target.serviceToken())\r\n" }
            if random.next() % 3 == 0 {
                head += "If-Match: \(["\"*\"", "*", "\"x\"", "W/\"y\"", ""].randomElement(using: &random)!)\r\n"
            }
            if random.next() % 4 == 0 {
                head += "x-ms-max-item-count: \(Int64(bitPattern: random.next()) % 3000)\r\n"
                head += "x-ms-continuation: \(Int64(bitPattern: random.next()))\r\n"
            }
            head += "Content-Length: \(body.count)\r\n"
            requests.append(Array((head + "\r\n").utf8) + body)
        }
        return requests
    }
}

/// The blob endpoint that device file uploads go to: Put Blob, Put Block, Put Block List and Get with forged,
/// missing or random SAS values, block ids and bodies, and file-upload grants on the service port.
enum BlobCases {
    static func sequence(_ random: inout SplitMix64, _ target: EmulatorProcess) -> [[UInt8]] {
        let blob = [
            "/uploads/\(EmulatorProcess.deviceId)/a.bin", "/uploads/../../etc/passwd", "/uploads/x/%2e%2e/y", "/",
            "/uploads/" + String(repeating: "b/", count: 500),
        ].randomElement(using: &random)!
        let query = [
            "?sv=2018-03-28&sr=b&sig=forged&se=2099-01-01T00%3A00%3A00Z&sp=rw",
            "?sig=\(Edge.bytes(8, &random).map { String($0, radix: 16) }.joined())&comp=block&blockid=\(random.next())",
            "?comp=blocklist", "?comp=block", "", "?sig=&comp=x&blockid=" + String(repeating: "A", count: 400),
        ].randomElement(using: &random)!
        var requests: [[UInt8]] = []
        for _ in 0..<(1 + Int(random.next() % 3)) {
            let method = ["PUT", "GET", "DELETE", "HEAD", "POST"].randomElement(using: &random)!
            let body: [UInt8] =
                random.next() % 3 == 0
                ? Array("<?xml version=\"1.0\"?><BlockList><Latest>\(random.next())</Latest><Committed>".utf8)
                : Edge.bytes(Edge.size(&random) % 200_000, &random)
            var head = "\(method) \(blob)\(query) HTTP/1.1\r\nHost: localhost\r\nx-ms-blob-type: BlockBlob\r\n"
            if random.next() % 5 == 0 {
                head += "Content-Length: \(Edge.uint32(&random))\r\n"
            } else {
                head += "Content-Length: \(body.count)\r\n"
            }
            requests.append(Array((head + "\r\n").utf8) + body)
        }
        return requests
    }
}

/// Requests to the IoT Edge workload API: signatures for module `m` (right and wrong generation ids, bad keys,
/// algorithms and bodies), the trust bundle, and paths that are neither.
enum WorkloadCases {
    static func sequence(_ random: inout SplitMix64, _ target: EmulatorProcess) -> [[UInt8]] {
        let generation = random.next() % 3 == 0 ? String(random.next()) : target.generationId
        let path = [
            "/modules/m/genid/\(generation)/sign", "/modules/%6D/genid/\(generation)/sign", "/trust-bundle",
            "/modules/nobody/genid/1/sign", "/modules//genid//sign", "/modules/m/genid/\(generation)/sign/extra",
            "/modules/" + String(repeating: "%", count: 300) + "/genid/1/sign", "/",
        ].randomElement(using: &random)!
        let query = ["?api-version=2019-01-30", "", "?api-version=", "?api-version=x&api-version=y"].randomElement(
            using: &random
        )!
        var requests: [[UInt8]] = []
        for _ in 0..<(1 + Int(random.next() % 3)) {
            let method = ["POST", "GET", "PUT", "DELETE"].randomElement(using: &random)!
            let data = Base64.encode(Edge.bytes(Edge.size(&random) % 6000, &random))
            let body = [
                #"{"keyId":"primary","algo":"HMACSHA256","data":"\#(data)"}"#,
                #"{"keyId":"secondary","algo":"HMACSHA256","data":"\#(data)"}"#,
                #"{"keyId":"primary","algo":"HMACSHA512","data":"AA=="}"#,
                #"{"keyId":"primary","algo":"HMACSHA256","data":"not base64!"}"#,
                #"{"keyId":[],"algo":{},"data":1e999}"#, String(repeating: "[", count: 2000), "",
            ].randomElement(using: &random)!
            var head = "\(method) \(path)\(query) HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            head +=
                random.next() % 5 == 0
                ? "Content-Length: \(Edge.uint32(&random))\r\n" : "Content-Length: \(body.utf8.count)\r\n"
            requests.append(Array((head + "\r\n" + body).utf8))
        }
        return requests
    }
}

/// A plain stream client for a unix socket: writes the chunks and reads for a moment, within socket time-outs.
enum UnixSocketClient {
    static func exchange(path: String, _ chunks: [[UInt8]], readTimeoutMilliseconds: Int) -> [UInt8] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return [] }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        var write = timeval(tv_sec: 1, tv_usec: 0)
        var read = timeval(tv_sec: readTimeoutMilliseconds / 1000, tv_usec: (readTimeoutMilliseconds % 1000) * 1000)
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &write, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &read, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { return [] }
        for chunk in chunks where !chunk.isEmpty {
            let sent = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent == chunk.count else { break }
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        for _ in 0..<3 {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { break }
            received += buffer[0..<count]
        }
        return received
    }
}

/// Byte-level mutations of a case's chunks.
enum Mutator {
    static func mutate(_ chunks: inout [[UInt8]], _ random: inout SplitMix64) {
        for _ in 0..<(1 + Int(random.next() % 4)) where !chunks.isEmpty {
            let index = Int(random.next() % UInt64(chunks.count))
            var chunk = chunks[index]
            switch random.next() % 10 {
            case 0 where !chunk.isEmpty:
                let at = Int(random.next() % UInt64(chunk.count))
                chunk[at] ^= 1 << UInt8(random.next() % 8)
            case 1 where !chunk.isEmpty:
                chunk[Int(random.next() % UInt64(chunk.count))] = [0x00, 0xFF, 0x7F, 0x80, 0x40, 0xA1].randomElement(
                    using: &random
                )!
            case 2 where chunk.count >= 4:
                let at = Int(random.next() % UInt64(chunk.count - 3))
                let value = Edge.uint32(&random).bigEndian
                withUnsafeBytes(of: value) { for offset in 0..<4 { chunk[at + offset] = $0[offset] } }
            case 3:
                let at = chunk.isEmpty ? 0 : Int(random.next() % UInt64(chunk.count + 1))
                chunk.insert(contentsOf: Edge.bytes(1 + Int(random.next() % 16), &random), at: at)
            case 4 where chunk.count > 1:
                let start = Int(random.next() % UInt64(chunk.count))
                chunk.removeSubrange(start..<min(chunk.count, start + 1 + Int(random.next() % 32)))
            case 5 where !chunk.isEmpty:
                chunk = Array(chunk.prefix(Int(random.next() % UInt64(chunk.count))))
            case 6:
                chunks.insert(chunk, at: index)
            case 7 where chunks.count > 1:
                chunks.remove(at: index)
                continue
            case 8 where chunks.count > 1:
                chunks.swapAt(index, Int(random.next() % UInt64(chunks.count)))
                continue
            default:
                chunks.append(Edge.bytes(1 + Int(random.next() % 64), &random))
                continue
            }
            chunks[index] = chunk
        }
    }
}
