import AzureIoTTestSupport
import HubAMQP
import Testing

/// `AMQPMessage.encoded()` writes its sections field by field; these check it against the sections built as values
/// and encoded by the general encoder, which is what it replaced.
@Suite("AMQP message encoding")
struct AMQPMessageEncodingTests {
    /// The message's sections as values, encoded by the general encoder.
    static func reference(_ message: AMQPMessage) throws -> [UInt8] {
        var encoder = AMQPEncoder()
        if !message.messageAnnotations.isEmpty {
            try encoder.encode(.described(descriptor: .ulong(0x72), value: .map(message.messageAnnotations)))
        }
        var fields: [AMQPValue] = [
            message.messageId ?? .null, message.userId.map { .binary($0) } ?? .null,
            message.to.map { .string($0) } ?? .null, message.subject.map { .string($0) } ?? .null,
            message.replyTo.map { .string($0) } ?? .null, message.correlationId ?? .null,
            message.contentType.map { .symbol($0) } ?? .null, message.contentEncoding.map { .symbol($0) } ?? .null,
            message.absoluteExpiryTime.map { .timestamp($0) } ?? .null,
            message.creationTime.map { .timestamp($0) } ?? .null,
        ]
        while fields.last == .null { fields.removeLast() }
        if !fields.isEmpty { try encoder.encode(.described(descriptor: .ulong(0x73), value: .list(fields))) }
        if !message.applicationProperties.isEmpty {
            let entries = message.applicationProperties.map { AMQPMapEntry(.string($0.0), $0.1) }
            try encoder.encode(.described(descriptor: .ulong(0x74), value: .map(entries)))
        }
        if let data = message.data {
            try encoder.encode(.described(descriptor: .ulong(0x75), value: .binary(data)))
        } else {
            try encoder.encode(.described(descriptor: .ulong(0x77), value: message.value ?? .null))
        }
        return encoder.bytes
    }

    static func randomMessage(_ random: inout SeededRandom) -> AMQPMessage {
        func maybe<T>(_ value: @autoclosure () -> T) -> T? { Bool.random(using: &random) ? value() : nil }
        func text(_ maximum: Int) -> String {
            // Lengths on both sides of the 255-byte small encodings; some non-ASCII for strings.
            let length = [0, 1, 17, 254, 255, 256, maximum].randomElement(using: &random)!
            return String(
                (0..<length).map { index in index % 7 == 3 ? "é" : Character(UnicodeScalar(97 + index % 26)!) }
            )
        }
        func ascii(_ maximum: Int) -> String {
            String(repeating: "a", count: [0, 16, 255, 256, maximum].randomElement(using: &random)!)
        }
        func bytes(_ maximum: Int) -> [UInt8] {
            (0..<[0, 1, 200, 300, maximum].randomElement(using: &random)!).map { UInt8(truncatingIfNeeded: $0) }
        }
        func value() -> AMQPValue {
            [
                .string(text(300)), .uint(UInt32.random(in: 0...300, using: &random)),
                .ulong(UInt64.random(in: 0...UInt64.max, using: &random)),
                .long(Int64.random(in: -300...300, using: &random)),
                .binary(bytes(600)), .boolean(Bool.random(using: &random)), .null, .timestamp(1_700_000_000_000),
                .list([.int(1), .string(text(20))]), .uuid(Array(repeating: 7, count: 16)),
            ].randomElement(using: &random)!
        }
        var message = AMQPMessage(data: maybe(bytes(2000)), value: nil)
        if message.data == nil { message.value = value() }
        // A null id reads back as no id: ids are never null here.
        func id() -> AMQPValue? {
            let id = value()
            return id == .null ? .string("id") : id
        }
        message.messageId = maybe(id()) ?? nil
        message.userId = maybe(bytes(300))
        message.to = maybe(text(300))
        message.subject = maybe(text(40))
        message.replyTo = maybe(text(40))
        message.correlationId = maybe(id()) ?? nil
        message.contentType = maybe(ascii(300))
        message.contentEncoding = maybe(ascii(20))
        message.absoluteExpiryTime = maybe(Int64.random(in: 0...Int64.max, using: &random))
        message.creationTime = maybe(Int64.random(in: -1000...Int64.max, using: &random))
        for _ in 0..<[0, 0, 1, 3, 40].randomElement(using: &random)! {
            message.applicationProperties.append((text(30), value()))
        }
        for index in 0..<[0, 0, 2].randomElement(using: &random)! {
            message.messageAnnotations.append(AMQPMapEntry(.symbol("x-opt-\(index)"), value()))
        }
        return message
    }

    @Test("3,000 random messages: the same bytes as their sections encoded as values, and decoded back to the same")
    func randomMessages() async throws {
        var random = SeededRandom()
        for iteration in 0..<3000 {
            await yieldToOtherTests(at: iteration)
            let message = Self.randomMessage(&random)
            let bytes = try message.encoded()
            let reference = try Self.reference(message)
            #expect(bytes == reference, "\(message)")
            if bytes != reference { break }
            #expect(try AMQPMessage(decoding: bytes) == message, "\(message)")
        }
    }

    @Test("null ids are trailing nulls the properties list leaves out, as the general encoder leaves them out")
    func nullIds() throws {
        var message = AMQPMessage(data: [1])
        message.messageId = .null
        #expect(try message.encoded() == (try Self.reference(message)))
        #expect(try message.encoded() == [0x00, 0x53, 0x75, 0xA0, 0x01, 0x01])
        message.correlationId = .null
        message.to = "x"
        #expect(try message.encoded() == (try Self.reference(message)))
    }

    @Test("a symbol that is not ASCII is refused with a typed error, as the general encoder refuses it")
    func nonASCIISymbol() {
        var message = AMQPMessage(data: [1])
        message.contentType = "tëxt/plain"
        #expect(throws: AMQPCodecError.self) { try message.encoded() }
        #expect(throws: AMQPCodecError.self) { try Self.reference(message) }
    }
}
