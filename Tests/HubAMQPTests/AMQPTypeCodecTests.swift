import AzureIoTTestSupport
import HubAMQP
import Testing

/// Byte-exact vectors (smallest encodings) and round trips for every AMQP 1.0 type.
@Suite("AMQP type codec")
struct AMQPTypeCodecTests {
    static func check(_ value: AMQPValue, _ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try AMQPEncoder.encode(value) == bytes, "encode \(value)", sourceLocation: sourceLocation)
        #expect(try AMQPDecoder.decode(bytes) == value, "decode \(bytes)", sourceLocation: sourceLocation)
    }

    @Test("scalars choose their smallest form")
    func scalars() throws {
        try Self.check(.null, [0x40])
        try Self.check(.boolean(true), [0x41])
        try Self.check(.boolean(false), [0x42])
        try Self.check(.ubyte(7), [0x50, 0x07])
        try Self.check(.ushort(0x1234), [0x60, 0x12, 0x34])
        try Self.check(.uint(0), [0x43])  // uint0
        try Self.check(.uint(200), [0x52, 0xC8])  // smalluint
        try Self.check(.uint(0x1_0000), [0x70, 0x00, 0x01, 0x00, 0x00])  // uint
        try Self.check(.ulong(0), [0x44])  // ulong0
        try Self.check(.ulong(0x10), [0x53, 0x10])  // smallulong (descriptor codes use this)
        try Self.check(.ulong(0x1_0000_0000), [0x80, 0, 0, 0, 1, 0, 0, 0, 0])
        try Self.check(.byte(-2), [0x51, 0xFE])
        try Self.check(.short(-2), [0x61, 0xFF, 0xFE])
        try Self.check(.int(-5), [0x54, 0xFB])  // smallint
        try Self.check(.int(1000), [0x71, 0x00, 0x00, 0x03, 0xE8])
        try Self.check(.long(127), [0x55, 0x7F])  // smalllong
        try Self.check(.long(-129), [0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        try Self.check(.float(1.5), [0x72, 0x3F, 0xC0, 0x00, 0x00])
        try Self.check(.double(-2), [0x82, 0xC0, 0, 0, 0, 0, 0, 0, 0])
        try Self.check(.decimal32(0x2200_0001), [0x74, 0x22, 0x00, 0x00, 0x01])
        try Self.check(.decimal64(1), [0x84, 0, 0, 0, 0, 0, 0, 0, 1])
        try Self.check(.decimal128([UInt8](repeating: 9, count: 16)), [0x94] + [UInt8](repeating: 9, count: 16))
        try Self.check(.char("€"), [0x73, 0x00, 0x00, 0x20, 0xAC])  // UTF-32 BE
        // 0x13167ADB8A1 ms
        try Self.check(.timestamp(1_311_704_463_521), [0x83, 0x00, 0x00, 0x01, 0x31, 0x67, 0xAD, 0xB8, 0xA1])
        try Self.check(.uuid(Array(0..<16)), [0x98] + Array(0..<16))
    }

    @Test("binary, string and symbol switch from 8- to 32-bit lengths at 256 bytes")
    func variableWidth() throws {
        try Self.check(.binary([1, 2]), [0xA0, 0x02, 0x01, 0x02])
        try Self.check(.string("hé"), [0xA1, 0x03, 0x68, 0xC3, 0xA9])
        try Self.check(.symbol("amqp:accepted:list"), [0xA3, 18] + Array("amqp:accepted:list".utf8))
        let long = String(repeating: "x", count: 256)
        try Self.check(.string(long), [0xB1, 0x00, 0x00, 0x01, 0x00] + Array(long.utf8))
        try Self.check(
            .binary([UInt8](repeating: 1, count: 300)),
            [0xB0, 0x00, 0x00, 0x01, 0x2C] + [UInt8](repeating: 1, count: 300)
        )
        try Self.check(.symbol(long), [0xB3, 0x00, 0x00, 0x01, 0x00] + Array(long.utf8))
    }

    @Test("lists, maps, arrays and described types")
    func compounds() throws {
        try Self.check(.list([]), [0x45])  // list0
        try Self.check(.list([.uint(1), .null]), [0xC0, 0x04, 0x02, 0x52, 0x01, 0x40])  // size 4 = count + 3 bytes
        try Self.check(
            .map([AMQPMapEntry(.symbol("a"), .int(1))]),
            [0xC1, 0x06, 0x02, 0xA3, 0x01, 0x61, 0x54, 0x01]
        )  // count 2 = one pair
        try Self.check(
            .array([.symbol("PLAIN"), .symbol("ANONYMOUS")]),
            [0xE0, 0x12, 0x02, 0xA3, 0x05] + Array("PLAIN".utf8) + [0x09] + Array("ANONYMOUS".utf8)
        )  // size 18
        try Self.check(.array([.int(1), .int(-1)]), [0xE0, 0x0A, 0x02, 0x71, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF])
        try Self.check(.array([.boolean(true), .boolean(false)]), [0xE0, 0x04, 0x02, 0x56, 0x01, 0x00])
        // The accepted outcome: descriptor smallulong 0x24, empty list.
        try Self.check(.described(descriptor: .ulong(0x24), value: .list([])), [0x00, 0x53, 0x24, 0x45])
        try Self.check(
            .described(descriptor: .symbol("amqp:accepted:list"), value: .list([])),
            [0x00, 0xA3, 18] + Array("amqp:accepted:list".utf8) + [0x45]
        )
        // An array of described values shares one described constructor.
        try Self.check(
            .array([
                .described(descriptor: .ulong(0x70), value: .binary([1])),
                .described(descriptor: .ulong(0x70), value: .binary([2])),
            ]),
            [0xE0, 0x09, 0x02, 0x00, 0x53, 0x70, 0xA0, 0x01, 0x01, 0x01, 0x02]
        )  // size 9: count, 4-byte constructor, 4
    }

    @Test("32-bit list and map forms for large contents, and nested compounds round-trip")
    func largeAndNested() throws {
        let many = AMQPValue.list((0..<300).map { .uint(UInt32($0)) })
        let bytes = try AMQPEncoder.encode(many)
        #expect(bytes.first == 0xD0)
        #expect(try AMQPDecoder.decode(bytes) == many)
        let nested = AMQPValue.map([
            AMQPMapEntry(.symbol("com.microsoft:client-version"), .string("azure-iot-swift/0.1.0")),
            AMQPMapEntry(
                .string("list"),
                .list([
                    .array([.string("a"), .string("b")]), .map([]), .described(descriptor: .ulong(1), value: .null),
                ])
            ),
            AMQPMapEntry(.timestamp(0), .array([.list([.null]), .list([])])),
            AMQPMapEntry(.uuid([UInt8](repeating: 0xAB, count: 16)), .array([.map([AMQPMapEntry(.int(1), .int(2))])])),
        ])
        #expect(try AMQPDecoder.decode(try AMQPEncoder.encode(nested)) == nested)
    }

    @Test(
        "malformed input throws a typed error at the first bad byte",
        arguments: [
            ([0x71, 0x00, 0x00], AMQPCodecError.Code.truncated),
            ([0xA1, 0x05, 0x61], .invalidSize),  // string longer than the input
            ([0xA1, 0x02, 0xC3, 0x28], .invalidText),  // bad UTF-8
            ([0xA3, 0x01, 0xE9], .invalidText),  // non-ASCII symbol
            ([0x56, 0x02], .invalidValue),  // boolean byte 2
            ([0x73, 0x00, 0x00, 0xD8, 0x00], .invalidValue),  // surrogate char
            ([0x01], .unknownFormatCode),
            ([0xC0, 0x05, 0x01, 0x40], .invalidSize),  // list size beyond input
            ([0xC0, 0x02, 0x03, 0x40], .invalidSize),  // count beyond size
            ([0xC0, 0x03, 0x01, 0x40, 0x40], .invalidSize),  // elements disagree with size
            ([0xC1, 0x02, 0x01, 0x40], .invalidSize),  // odd map count
            ([0xF0, 0x00, 0x00, 0x00, 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 0x40], .invalidSize),  // 4G nulls
            ([0xE0, 0x03, 0x05, 0x50, 0x01], .invalidSize),  // 5 ubytes in 1 byte
            ([0x40, 0x40], .trailingBytes),
            ([0x00, 0x53], .truncated),  // described value missing
        ] as [([UInt8], AMQPCodecError.Code)]
    )
    func malformed(_ bytes: [UInt8], _ code: AMQPCodecError.Code) {
        #expect(throws: AMQPCodecError(code, "")) { try AMQPDecoder.decode(bytes) }
    }

    @Test("nesting is capped")
    func depth() {
        var bytes: [UInt8] = []
        for _ in 0..<40 { bytes += [0x00, 0x53, 0x01] }  // 40 nested described values
        bytes.append(0x40)
        #expect(throws: AMQPCodecError(.nestingTooDeep, "")) { try AMQPDecoder.decode(bytes) }
    }

    @Test("random bytes never trap")
    func randomBytes() async {
        // A trap ends the process before any expectation could report: the seed is printed up front.
        var generator = SeededRandom()
        print("random bytes: \(generator.replay)")
        for iteration in 0..<20_000 {
            await yieldToOtherTests(at: iteration)
            let bytes = (0..<Int.random(in: 0..<48, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            _ = try? AMQPDecoder.decode(bytes)
        }
    }
}

@Suite("AMQP framing")
struct AMQPFramingTests {
    @Test("frames round-trip, including heartbeats, and drip-feeding consumes nothing early")
    func dripFeed() throws {
        let frames = [
            AMQPFrame(
                type: .sasl,
                channel: 0,
                body: try AMQPEncoder.encode(
                    .described(descriptor: .ulong(0x40), value: .list([.array([.symbol("PLAIN")])]))
                )
            ),
            AMQPFrame(channel: 0, body: []),
            AMQPFrame(channel: 7, body: [UInt8](repeating: 0x40, count: 100)),
        ]
        let stream = frames.flatMap(\.encoded)
        // SIZE 24, DOFF 2, SASL, channel 0
        #expect(Array(stream.prefix(8)) == [0x00, 0x00, 0x00, 0x18, 0x02, 0x01, 0x00, 0x00])
        var buffer: [UInt8] = []
        var decoded: [AMQPFrame] = []
        let framer = AMQPFramer()
        for byte in stream {
            buffer.append(byte)
            if let (frame, size) = try framer.nextFrame(in: buffer[...]) {
                decoded.append(frame)
                buffer.removeFirst(size)
            }
        }
        #expect(decoded == frames)
        #expect(decoded[1].isHeartbeat)
    }

    @Test("an extended header is skipped by DOFF")
    func extendedHeader() throws {
        let bytes: [UInt8] = [0, 0, 0, 14, 3, 0, 0, 1, 0xEE, 0xEE, 0xEE, 0xEE, 0x40, 0x41]
        let (frame, size) = try #require(try AMQPFramer().nextFrame(in: bytes[...]))
        #expect(size == 14 && frame.body == [0x40, 0x41] && frame.channel == 1)
    }

    @Test(
        "bad headers are refused before the body is buffered",
        arguments: [
            ([0, 0, 0, 7, 2, 0, 0, 0], AMQPCodecError.Code.invalidFrameHeader),  // SIZE < 8
            ([0, 0, 0, 8, 1, 0, 0, 0], .invalidFrameHeader),  // DOFF < 2
            ([0, 0, 0, 12, 4, 0, 0, 0], .invalidFrameHeader),  // DOFF beyond SIZE
            ([0, 0, 2, 1, 2, 0, 0, 0], .invalidFrameHeader),  // 513 > 512 before open
            ([0, 0, 0, 8, 2, 9, 0, 0], .invalidFrameHeader),  // frame type 9
        ] as [([UInt8], AMQPCodecError.Code)]
    )
    func badHeaders(_ bytes: [UInt8], _ code: AMQPCodecError.Code) {
        #expect(throws: AMQPCodecError(code, "")) { try AMQPFramer().nextFrame(in: bytes[...]) }
    }

    @Test("protocol headers")
    func protocolHeaders() throws {
        #expect(try AMQPProtocolHeader.parse(AMQPProtocolHeader.sasl.bytes[...]) == .sasl)
        #expect(try AMQPProtocolHeader.parse([0x41, 0x4D, 0x51, 0x50, 0, 1, 0, 0][...]) == .amqp)
        #expect(try AMQPProtocolHeader.parse([0x41, 0x4D][...]) == nil)
        #expect(throws: AMQPCodecError(.invalidProtocolHeader, "")) {
            try AMQPProtocolHeader.parse([0x41, 0x4D, 0x51, 0x50, 0, 0, 9, 1][...])
        }
    }
}
