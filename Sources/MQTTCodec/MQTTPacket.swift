/// Every MQTT 3.1.1 control packet, both directions (a client's and a broker's).
public enum MQTTPacket: Sendable, Equatable {
    /// CONNECT (client to broker).
    case connect(ConnectPacket)
    /// CONNACK.
    case connack(ConnAckPacket)
    /// PUBLISH (both directions).
    case publish(PublishPacket)
    /// PUBACK: QoS 1 acknowledgement.
    case puback(packetId: UInt16)
    /// PUBREC: QoS 2, part 1.
    case pubrec(packetId: UInt16)
    /// PUBREL: QoS 2, part 2.
    case pubrel(packetId: UInt16)
    /// PUBCOMP: QoS 2, part 3.
    case pubcomp(packetId: UInt16)
    /// SUBSCRIBE.
    case subscribe(SubscribePacket)
    /// SUBACK.
    case suback(SubAckPacket)
    /// UNSUBSCRIBE.
    case unsubscribe(UnsubscribePacket)
    /// UNSUBACK.
    case unsuback(packetId: UInt16)
    /// PINGREQ.
    case pingreq
    /// PINGRESP.
    case pingresp
    /// DISCONNECT (client to broker).
    case disconnect

    /// The packet type in the high nibble of the first byte (§2.2.1).
    enum PacketType: UInt8 {
        case connect = 1
        case connack
        case publish
        case puback
        case pubrec
        case pubrel
        case pubcomp
        case subscribe
        case suback
        case unsubscribe
        case unsuback
        case pingreq
        case pingresp
        case disconnect

        /// The low-nibble flags the spec fixes for every type but PUBLISH (§2.2.2).
        var requiredFlags: UInt8 {
            switch self {
            case .pubrel, .subscribe, .unsubscribe: return 0x02
            default: return 0x00
            }
        }
    }

    // MARK: - Encoding

    /// Appends the packet's bytes to `buffer`. Throws ``MQTTCodecError`` for fields the spec forbids (packet id 0,
    /// wildcards in a topic name, QoS/DUP contradictions, oversize fields).
    public func encode(into buffer: inout [UInt8]) throws(MQTTCodecError) {
        switch self {
        case .connect(let packet):
            try packet.validate()
            Self.write(.connect, flags: 0, bodySize: packet.bodySize, into: &buffer) { packet.writeBody(into: &$0) }
        case .connack(let packet):
            Self.write(.connack, flags: 0, bodySize: 2, into: &buffer) { packet.writeBody(into: &$0) }
        case .publish(let packet):
            try packet.encode(into: &buffer)
        case .puback(let id): try Self.writeAcknowledgement(.puback, id, into: &buffer)
        case .pubrec(let id): try Self.writeAcknowledgement(.pubrec, id, into: &buffer)
        case .pubrel(let id): try Self.writeAcknowledgement(.pubrel, id, into: &buffer)
        case .pubcomp(let id): try Self.writeAcknowledgement(.pubcomp, id, into: &buffer)
        case .unsuback(let id): try Self.writeAcknowledgement(.unsuback, id, into: &buffer)
        case .subscribe(let packet):
            try packet.validate()
            Self.write(.subscribe, flags: 0x02, bodySize: packet.bodySize, into: &buffer) {
                packet.writeBody(into: &$0)
            }
        case .suback(let packet):
            try packet.validate()
            Self.write(.suback, flags: 0, bodySize: 2 + packet.returnCodes.count, into: &buffer) {
                packet.writeBody(into: &$0)
            }
        case .unsubscribe(let packet):
            try packet.validate()
            Self.write(.unsubscribe, flags: 0x02, bodySize: packet.bodySize, into: &buffer) {
                packet.writeBody(into: &$0)
            }
        case .pingreq: buffer.append(contentsOf: [PacketType.pingreq.rawValue << 4, 0])
        case .pingresp: buffer.append(contentsOf: [PacketType.pingresp.rawValue << 4, 0])
        case .disconnect: buffer.append(contentsOf: [PacketType.disconnect.rawValue << 4, 0])
        }
    }

    /// The packet's bytes.
    public func encoded() throws(MQTTCodecError) -> [UInt8] {
        var buffer: [UInt8] = []
        try self.encode(into: &buffer)
        return buffer
    }

    private static func write(
        _ type: PacketType,
        flags: UInt8,
        bodySize: Int,
        into buffer: inout [UInt8],
        body: (inout MQTTByteWriter) -> Void
    ) {
        var writer = MQTTByteWriter(capacity: 0)
        swap(&writer.bytes, &buffer)
        writer.bytes.reserveCapacity(writer.bytes.count + 1 + MQTTByteWriter.remainingLengthSize(bodySize) + bodySize)
        writer.writeByte(type.rawValue << 4 | flags)
        writer.writeRemainingLength(bodySize)
        body(&writer)
        swap(&writer.bytes, &buffer)
    }

    private static func writeAcknowledgement(_ type: PacketType, _ packetId: UInt16, into buffer: inout [UInt8])
        throws(MQTTCodecError)
    {
        guard packetId != 0 else { throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]") }
        buffer.append(type.rawValue << 4 | type.requiredFlags)
        buffer.append(2)
        buffer.append(UInt8(packetId >> 8))
        buffer.append(UInt8(truncatingIfNeeded: packetId))
    }

    // MARK: - Decoding

    /// Decodes one complete packet given its first byte and its body (as ``MQTTFramer`` delimits them). Throws
    /// ``MQTTCodecError`` at the first bad byte.
    public static func decode(firstByte: UInt8, body: ArraySlice<UInt8>) throws(MQTTCodecError) -> MQTTPacket {
        guard let type = PacketType(rawValue: firstByte >> 4) else {
            throw MQTTCodecError(.reservedPacketType, "packet type \(firstByte >> 4) is reserved")
        }
        let flags = firstByte & 0x0F
        if type != .publish && flags != type.requiredFlags {
            throw MQTTCodecError(
                .invalidFixedHeaderFlags,
                "\(type) flags must be \(type.requiredFlags), not \(flags) [MQTT-2.2.2-2]"
            )
        }
        // PUBLISH indexes its body directly; the other packets go through the bounds-checked cursor.
        switch type {
        case .publish: return .publish(try PublishPacket(flags: flags, body: body))
        case .connect: return .connect(try Self.read(body, ConnectPacket.init(decoding:)))
        case .connack: return .connack(try Self.read(body, ConnAckPacket.init(decoding:)))
        case .puback: return .puback(packetId: try Self.read(body, Self.readAcknowledgement))
        case .pubrec: return .pubrec(packetId: try Self.read(body, Self.readAcknowledgement))
        case .pubrel: return .pubrel(packetId: try Self.read(body, Self.readAcknowledgement))
        case .pubcomp: return .pubcomp(packetId: try Self.read(body, Self.readAcknowledgement))
        case .subscribe: return .subscribe(try Self.read(body, SubscribePacket.init(decoding:)))
        case .suback: return .suback(try Self.read(body, SubAckPacket.init(decoding:)))
        case .unsubscribe: return .unsubscribe(try Self.read(body, UnsubscribePacket.init(decoding:)))
        case .unsuback: return .unsuback(packetId: try Self.read(body, Self.readAcknowledgement))
        case .pingreq, .pingresp, .disconnect:
            try MQTTByteReader(body).expectEnd()
            return type == .pingreq ? .pingreq : type == .pingresp ? .pingresp : .disconnect
        }
    }

    /// Runs `decode` over a cursor on `body`.
    private static func read<Decoded>(
        _ body: ArraySlice<UInt8>,
        _ decode: (inout MQTTByteReader) throws(MQTTCodecError) -> Decoded
    ) throws(MQTTCodecError) -> Decoded {
        var reader = MQTTByteReader(body)
        return try decode(&reader)
    }

    private static func readAcknowledgement(_ reader: inout MQTTByteReader) throws(MQTTCodecError) -> UInt16 {
        let packetId = try reader.readUInt16()
        guard packetId != 0 else {
            throw MQTTCodecError(.zeroPacketIdentifier, "packet id 0 [MQTT-2.3.1-1]", offset: 0)
        }
        try reader.expectEnd()
        return packetId
    }
}
