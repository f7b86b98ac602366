/// PUBLISH (§3.3): topic, QoS, DUP and RETAIN flags, packet id (QoS 1 and 2), payload.
public struct PublishPacket: Sendable, Equatable {
    /// The topic name's UTF-8 bytes. A decoded packet shares them with the buffer it was decoded from (no copy).
    public var topicBytes: ArraySlice<UInt8> {
        didSet { self.topicIsValid = Self.isValidName(self.topicBytes) }
    }
    /// Whether ``topicBytes`` is a valid topic name, worked out once when they are set (encoding then skips the scan;
    /// an invalid name still throws its precise error from the encoder).
    private var topicIsValid: Bool
    /// The application message. A decoded packet shares it with the buffer it was decoded from (no copy).
    public var payloadBytes: ArraySlice<UInt8>
    /// The delivery guarantee.
    public var qos: MQTTQoS
    /// Whether the broker retains the message.
    public var retain: Bool
    /// Whether this is a redelivery (DUP flag).
    public var duplicate: Bool
    /// Present for QoS 1 and 2, never 0.
    public var packetId: UInt16?

    /// The topic name (no wildcards), made from ``topicBytes`` when read.
    public var topic: String {
        get { String(decoding: self.topicBytes, as: UTF8.self) }
        set { self.topicBytes = ArraySlice(newValue.utf8) }
    }

    /// The application message as an array, copied from ``payloadBytes`` when read.
    public var payload: [UInt8] {
        get { Array(self.payloadBytes) }
        set { self.payloadBytes = newValue[...] }
    }

    /// A PUBLISH; `packetId` is required for QoS 1 and 2.
    public init(
        topic: String,
        payload: [UInt8],
        qos: MQTTQoS = .atMostOnce,
        retain: Bool = false,
        duplicate: Bool = false,
        packetId: UInt16? = nil
    ) {
        self.topicBytes = ArraySlice(topic.utf8)
        self.topicIsValid = Self.isValidName(self.topicBytes)
        self.payloadBytes = payload[...]
        self.qos = qos
        self.retain = retain
        self.duplicate = duplicate
        self.packetId = packetId
    }

    /// A QoS 0 PUBLISH from topic bytes the caller already has (shared, not copied).
    public init(topicBytes: ArraySlice<UInt8>, payload: [UInt8]) {
        self.topicBytes = topicBytes
        self.topicIsValid = Self.isValidName(topicBytes)
        self.payloadBytes = payload[...]
        self.qos = .atMostOnce
        self.retain = false
        self.duplicate = false
        self.packetId = nil
    }

    enum Flag {
        static let retain: UInt8 = 0x01
        static let qosShift: UInt8 = 1
        static let qosMask: UInt8 = 0x06
        static let duplicate: UInt8 = 0x08
    }

    var flags: UInt8 {
        var flags = self.qos.rawValue << Flag.qosShift
        if self.retain { flags |= Flag.retain }
        if self.duplicate { flags |= Flag.duplicate }
        return flags
    }

    private static func isValidName(_ bytes: ArraySlice<UInt8>) -> Bool {
        do {
            try MQTTTopic.validateName(bytes: bytes)
            return true
        } catch {
            return false
        }
    }

    /// Throws the precise error for an invalid topic name (a no-op for a name already found valid).
    public func validateTopic() throws(MQTTCodecError) {
        if !self.topicIsValid { try MQTTTopic.validateName(bytes: self.topicBytes) }
    }

    func validate() throws(MQTTCodecError) {
        try self.validateTopic()
        if self.qos == .atMostOnce {
            guard self.packetId == nil else { throw MQTTCodecError(.invalidQoS, "a QoS 0 PUBLISH has no packet id") }
            guard !self.duplicate else { throw MQTTCodecError(.invalidQoS, "DUP must be 0 for QoS 0 [MQTT-3.3.1-2]") }
        } else {
            guard let packetId else {
                throw MQTTCodecError(.zeroPacketIdentifier, "a QoS \(self.qos.rawValue) PUBLISH needs a packet id")
            }
            guard packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]") }
        }
    }

    /// Room for a typical fixed header, topic and packet id, copied into the buffer to grow it before they are
    /// written over it.
    private static let zeros = [UInt8](repeating: 0, count: 512)

    var bodySize: Int { 2 + self.topicBytes.count + (self.qos == .atMostOnce ? 0 : 2) + self.payloadBytes.count }

    /// Appends the packet: the fixed header and the topic's length are assembled in a register, the buffer grows
    /// once, and header, topic, packet id and payload are copied straight into it.
    public func encode(into buffer: inout [UInt8]) throws(MQTTCodecError) {
        try self.validate()
        let bodySize = self.bodySize
        guard bodySize <= MQTTByteWriter.maximumRemainingLength else {
            throw MQTTCodecError(.packetTooLarge, "a PUBLISH of \(bodySize) bytes exceeds MQTT's limit")
        }
        // First byte, Remaining Length (1-4 bytes) and the topic's two-byte length: at most 7 bytes.
        var header = UInt64(MQTTPacket.PacketType.publish.rawValue << 4 | self.flags)
        var headerCount = 1
        var remaining = bodySize
        repeat {
            var digit = UInt64(remaining & 0x7F)
            remaining >>= 7
            if remaining > 0 { digit |= 0x80 }
            header |= digit << (8 * headerCount)
            headerCount += 1
        } while remaining > 0
        let topicCount = self.topicBytes.count
        header |= UInt64(topicCount >> 8) << (8 * headerCount) | UInt64(topicCount & 0xFF) << (8 * (headerCount + 1))
        // Everything before the payload (`bodySize` already counts the topic's length field, which travels in
        // `header`): the buffer grows by a copy of zeros (one memcpy; a repeated element is appended byte by byte)
        // that is then written over. The payload is appended with one more copy.
        let prefixCount = headerCount + bodySize - self.payloadBytes.count
        let start = buffer.count
        if prefixCount <= Self.zeros.count {
            Self.zeros.withUnsafeBufferPointer {
                buffer.append(contentsOf: UnsafeBufferPointer(rebasing: $0[..<prefixCount]))
            }
        } else {
            buffer.append(contentsOf: repeatElement(0, count: prefixCount))
        }
        buffer.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress! + start
            if prefixCount >= 8 {
                // One 8-byte store; the bytes past the header are overwritten by the topic and packet id below.
                base.storeBytes(of: header.littleEndian, as: UInt64.self)
            } else {
                withUnsafeBytes(of: header.littleEndian) {
                    base.copyMemory(from: $0.baseAddress!, byteCount: headerCount + 2)
                }
            }
            self.topicBytes.withUnsafeBytes { topic in
                if let source = topic.baseAddress {
                    (base + headerCount + 2).copyMemory(from: source, byteCount: topic.count)
                }
            }
            if let packetId {
                (base + headerCount + 2 + topicCount).storeBytes(of: packetId.bigEndian, as: UInt16.self)
            }
        }
        self.payloadBytes.withUnsafeBufferPointer { buffer.append(contentsOf: $0) }
    }

    /// Decodes a PUBLISH body given the fixed header's flags, indexing the body directly: the topic and payload
    /// become slices of `body` (no copy). Throws at the first bad byte.
    @inline(__always)
    init(flags: UInt8, body: ArraySlice<UInt8>) throws(MQTTCodecError) {
        guard let qos = MQTTQoS(rawValue: (flags & Flag.qosMask) >> Flag.qosShift) else {
            throw MQTTCodecError(.invalidQoS, "PUBLISH with QoS 3 [MQTT-3.3.1-4]", offset: 0)
        }
        let duplicate = flags & Flag.duplicate != 0
        if qos == .atMostOnce && duplicate {
            throw MQTTCodecError(.invalidQoS, "DUP set on a QoS 0 PUBLISH [MQTT-3.3.1-2]", offset: 0)
        }
        let start = body.startIndex
        let end = body.endIndex
        guard end - start >= 2 else {
            throw MQTTCodecError(.truncated, "the packet ends where a two-byte integer should be", offset: 0)
        }
        let topicCount = Int(body[start]) << 8 | Int(body[start + 1])
        let topicEnd = start + 2 + topicCount
        guard topicEnd <= end else {
            throw MQTTCodecError(.truncated, "the packet ends where \(topicCount) bytes should be", offset: 2)
        }
        let topic = body[(start + 2)..<topicEnd]
        do { try MQTTTopic.validateName(bytes: topic) } catch {
            throw MQTTCodecError(error.code, error.message, offset: 2)
        }
        var payloadStart = topicEnd
        if qos == .atMostOnce {
            self.packetId = nil
        } else {
            guard end - topicEnd >= 2 else {
                throw MQTTCodecError(
                    .truncated,
                    "the packet ends where a two-byte integer should be",
                    offset: topicEnd - start
                )
            }
            let packetId = UInt16(body[topicEnd]) << 8 | UInt16(body[topicEnd + 1])
            guard packetId != 0 else {
                throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]", offset: topicEnd - start)
            }
            self.packetId = packetId
            payloadStart += 2
        }
        self.qos = qos
        self.duplicate = duplicate
        self.retain = flags & Flag.retain != 0
        self.topicBytes = topic
        self.topicIsValid = true
        self.payloadBytes = body[payloadStart..<end]
    }
}
