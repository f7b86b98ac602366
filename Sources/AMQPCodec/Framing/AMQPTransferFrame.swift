/// The hot path for transfer frames, which carry nearly all traffic: ``append(_:payload:to:)`` writes a whole frame
/// (header, transfer performative, payload) into the caller's buffer, and ``read(_:maximumFrameSize:)`` reads one
/// in place, its delivery tag and payload as slices of the buffer, without building `AMQPValue`s. Both agree byte for
/// byte with ``AMQPFrame`` and ``AMQPPerformative/transfer(_:payload:)``; a transfer with fields this path does not
/// read (a delivery state, resume, aborted, batchable) is left to ``AMQPPerformative/decode(_:)``.
public enum AMQPTransferFrame {
    /// The transfer fields the hot path writes and reads.
    public struct Header: Sendable, Equatable {
        /// The channel of the session.
        public var channel: UInt16
        /// The link handle.
        public var handle: UInt32
        /// The delivery id (first frame of a delivery).
        public var deliveryId: UInt32?
        /// The delivery tag (first frame of a delivery); a slice of the buffer read.
        public var deliveryTag: ArraySlice<UInt8>?
        /// The message format.
        public var messageFormat: UInt32?
        /// Whether the delivery is settled.
        public var settled: Bool?
        /// Whether more frames of the delivery follow.
        public var more: Bool?

        /// A header.
        public init(
            channel: UInt16 = 0,
            handle: UInt32,
            deliveryId: UInt32? = nil,
            deliveryTag: ArraySlice<UInt8>? = nil,
            messageFormat: UInt32? = nil,
            settled: Bool? = nil,
            more: Bool? = nil
        ) {
            self.channel = channel
            self.handle = handle
            self.deliveryId = deliveryId
            self.deliveryTag = deliveryTag
            self.messageFormat = messageFormat
            self.settled = settled
            self.more = more
        }
    }

    /// Appends one AMQP frame holding `header`'s transfer and `payload` to `buffer`; nothing else is allocated when
    /// `buffer` has the room. Trailing absent fields are left out and every number takes its smallest encoding, as
    /// `AMQPEncoder` writes them. Throws ``AMQPCodecError/Code/invalidSize`` above 4 GiB.
    public static func append(
        _ header: Header,
        payload: UnsafeRawBufferPointer,
        to buffer: inout [UInt8]
    ) throws(AMQPCodecError) {
        let headerSize = Self.headerSize(header)
        guard headerSize + payload.count <= Int(UInt32.max) else {
            throw AMQPCodecError(.invalidSize, "a transfer frame above 4 GiB")
        }
        Self.appendHeader(header, frameSize: headerSize + payload.count, to: &buffer)
        buffer.append(contentsOf: payload)
    }

    /// Appends one AMQP frame holding `header`'s transfer, whose payload `payload` writes straight into `buffer` (a
    /// message encoded in place with ``AMQPMessage/encode(appendingTo:)``: no copy of it is made); the frame's size
    /// is filled in afterwards. On a throw, `buffer` is left as it was. Throws ``AMQPCodecError/Code/invalidSize``
    /// above 4 GiB.
    public static func append(
        _ header: Header,
        to buffer: inout [UInt8],
        payload: (inout [UInt8]) throws(AMQPCodecError) -> Void
    ) throws(AMQPCodecError) {
        let start = buffer.count
        Self.appendHeader(header, frameSize: Self.headerSize(header), to: &buffer)
        do {
            try payload(&buffer)
        } catch {
            buffer.removeSubrange(start...)
            throw error
        }
        let size = buffer.count - start
        guard size <= Int(UInt32.max) else {
            buffer.removeSubrange(start...)
            throw AMQPCodecError(.invalidSize, "a transfer frame above 4 GiB")
        }
        buffer.withUnsafeMutableBufferPointer { bytes in
            var writer = Writer(base: bytes.baseAddress! + start)
            writer.uint32(UInt32(size))
        }
    }

    /// The frame header and transfer performative of `header`: how many fields, their bytes, and the whole size.
    private static func layout(_ header: Header) -> (count: Int, fieldBytes: Int, small: Bool, size: Int) {
        // The fields, trailing nils left out.
        let count =
            header.more != nil
            ? 6
            : header.settled != nil
                ? 5 : header.messageFormat != nil ? 4 : header.deliveryTag != nil ? 3 : header.deliveryId != nil ? 2 : 1
        var fieldBytes = Self.uintSize(header.handle)
        if count >= 2 { fieldBytes += header.deliveryId.map(Self.uintSize) ?? 1 }
        if count >= 3 { fieldBytes += header.deliveryTag.map { ($0.count <= 255 ? 2 : 5) + $0.count } ?? 1 }
        if count >= 4 { fieldBytes += header.messageFormat.map(Self.uintSize) ?? 1 }
        if count >= 5 { fieldBytes += 1 }
        if count >= 6 { fieldBytes += 1 }
        let small = fieldBytes + 1 <= 255
        let performative = 3 + (small ? 3 : 9) + fieldBytes
        return (count, fieldBytes, small, 8 + performative)
    }

    /// The bytes of the frame header and transfer performative of `header`.
    private static func headerSize(_ header: Header) -> Int { Self.layout(header).size }

    /// Writes the frame header (`frameSize` in it) and the transfer performative of `header`.
    private static func appendHeader(_ header: Header, frameSize size: Int, to buffer: inout [UInt8]) {
        let (count, fieldBytes, small, headerSize) = Self.layout(header)
        // The frame header and the performative are written into stack memory and appended in one go: no per-byte
        // capacity checks.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: headerSize) { scratch in
            var writer = Writer(base: scratch.baseAddress!)
            writer.uint32(UInt32(size))
            writer.byte(2)  // DOFF
            writer.byte(0)  // AMQP frame
            writer.byte(UInt8(header.channel >> 8))
            writer.byte(UInt8(header.channel & 0xFF))
            writer.byte(AMQPFormatCode.described)
            writer.byte(AMQPFormatCode.smallULong)
            writer.byte(0x14)
            if small {
                writer.byte(AMQPFormatCode.list8)
                writer.byte(UInt8(fieldBytes + 1))
                writer.byte(UInt8(count))
            } else {
                writer.byte(AMQPFormatCode.list32)
                writer.uint32(UInt32(fieldBytes + 4))
                writer.uint32(UInt32(count))
            }
            writer.uint(header.handle)
            if count >= 2 { writer.optionalUInt(header.deliveryId) }
            if count >= 3 {
                if let tag = header.deliveryTag {
                    if tag.count <= 255 {
                        writer.byte(AMQPFormatCode.binary8)
                        writer.byte(UInt8(tag.count))
                    } else {
                        writer.byte(AMQPFormatCode.binary32)
                        writer.uint32(UInt32(tag.count))
                    }
                    writer.bytes(tag)
                } else {
                    writer.byte(AMQPFormatCode.null)
                }
            }
            if count >= 4 { writer.optionalUInt(header.messageFormat) }
            if count >= 5 { writer.optionalBool(header.settled) }
            if count >= 6 { writer.optionalBool(header.more) }
            buffer.append(contentsOf: UnsafeBufferPointer(start: scratch.baseAddress, count: writer.offset))
        }
    }

    /// Writes into stack memory sized by ``append(_:payload:to:)`` beforehand.
    private struct Writer {
        let base: UnsafeMutablePointer<UInt8>
        var offset = 0

        mutating func byte(_ value: UInt8) {
            self.base[self.offset] = value
            self.offset += 1
        }

        mutating func uint32(_ value: UInt32) {
            self.byte(UInt8(value >> 24))
            self.byte(UInt8((value >> 16) & 0xFF))
            self.byte(UInt8((value >> 8) & 0xFF))
            self.byte(UInt8(value & 0xFF))
        }

        mutating func uint(_ value: UInt32) {
            if value == 0 {
                self.byte(AMQPFormatCode.uint0)
            } else if value <= 0xFF {
                self.byte(AMQPFormatCode.smallUInt)
                self.byte(UInt8(value))
            } else {
                self.byte(AMQPFormatCode.uint)
                self.uint32(value)
            }
        }

        mutating func optionalUInt(_ value: UInt32?) {
            if let value { self.uint(value) } else { self.byte(AMQPFormatCode.null) }
        }

        mutating func optionalBool(_ value: Bool?) {
            switch value {
            case true?: self.byte(AMQPFormatCode.booleanTrue)
            case false?: self.byte(AMQPFormatCode.booleanFalse)
            case nil: self.byte(AMQPFormatCode.null)
            }
        }

        mutating func bytes(_ values: ArraySlice<UInt8>) {
            for value in values { self.byte(value) }
        }
    }

    /// What ``read(_:maximumFrameSize:)`` found at the start of a buffer.
    public enum Read: Sendable, Equatable {
        /// Not a whole frame yet.
        case incomplete
        /// A transfer this path reads: its fields and where its payload lies in the buffer, and the frame's size.
        case transfer(Header, payload: Range<Int>, size: Int)
        /// Another frame (or a transfer with fields this path does not read): decode it with ``AMQPFramer`` and
        /// ``AMQPPerformative/decode(_:)``.
        case other
    }

    /// Reads the frame at the start of `buffer` in place. Checks the frame header as ``AMQPFramer`` does and throws
    /// ``AMQPCodecError`` where it would; every read is bounds-checked against the frame.
    public static func read(_ buffer: ArraySlice<UInt8>, maximumFrameSize: Int) throws(AMQPCodecError) -> Read {
        guard let frame = try AMQPFramer.header(in: buffer, maximumFrameSize: maximumFrameSize) else {
            return .incomplete
        }
        let start = buffer.startIndex
        let size = frame.size
        let dataOffset = frame.bodyOffset / 4
        guard frame.type == .amqp else { return .other }
        let channel = frame.channel
        // Read through a pointer (the cursor checks every read against the frame's end itself); positions are
        // offsets into the slice, turned back into its indices at the end.
        let parsed = buffer.withUnsafeBufferPointer { bytes -> (Header, tag: Range<Int>?, payloadStart: Int)? in
            var cursor = Cursor(bytes: bytes, position: dataOffset * 4, end: size)
            guard let (header, tag) = cursor.transfer(channel: channel) else { return nil }
            return (header, tag, cursor.position)
        }
        guard let parsed else { return .other }
        var header = parsed.0
        if let tag = parsed.tag { header.deliveryTag = buffer[(start + tag.lowerBound)..<(start + tag.upperBound)] }
        let payloadStart = parsed.payloadStart
        return .transfer(header, payload: (start + payloadStart)..<(start + size), size: size)
    }

    /// The frame at the start of `buffer` (`nil`: not whole yet), and the performative `parse` reads from its body
    /// in place when it is an AMQP frame that holds exactly that performative (`value` is `nil` otherwise: the general
    /// decoder's case). Checks the frame header as ``AMQPFramer`` does and throws ``AMQPCodecError`` where it would.
    fileprivate static func performative<Value>(
        in buffer: ArraySlice<UInt8>,
        _ maximumFrameSize: Int,
        _ parse: (inout Cursor) -> Value?
    ) throws(AMQPCodecError) -> (value: Value?, channel: UInt16, size: Int)? {
        guard let frame = try AMQPFramer.header(in: buffer, maximumFrameSize: maximumFrameSize) else { return nil }
        let size = frame.size
        guard frame.type == .amqp, frame.bodyOffset < size else { return (nil, frame.channel, size) }
        let value = buffer.withUnsafeBufferPointer { bytes -> Value? in
            var cursor = Cursor(bytes: bytes, position: frame.bodyOffset, end: size)
            guard let value = parse(&cursor), cursor.position == size else { return nil }
            return value
        }
        return (value, frame.channel, size)
    }

    // MARK: - Encoding helpers

    private static func uintSize(_ value: UInt32) -> Int { value == 0 ? 1 : value <= 0xFF ? 2 : 5 }

    // MARK: - Decoding

    /// A bounds-checked reader over one frame's body: every read that would pass `end` fails (returns `nil`).
    fileprivate struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var position: Int
        let end: Int

        mutating func byte() -> UInt8? {
            guard self.position < self.end else { return nil }
            defer { self.position += 1 }
            return self.bytes[self.position]
        }

        mutating func uint32() -> UInt32? {
            guard self.end - self.position >= 4 else { return nil }
            let p = self.position
            self.position += 4
            return UInt32(self.bytes[p]) << 24 | UInt32(self.bytes[p + 1]) << 16 | UInt32(self.bytes[p + 2]) << 8
                | UInt32(self.bytes[p + 3])
        }

        /// A transfer's performative (its delivery tag as a range of the frame), or `nil` for anything this path
        /// leaves to the general decoder.
        mutating func transfer(channel: UInt16) -> (Header, tag: Range<Int>?)? {
            guard self.byte() == AMQPFormatCode.described else { return nil }
            switch self.byte() {
            case AMQPFormatCode.smallULong?:
                guard self.byte() == 0x14 else { return nil }
            case AMQPFormatCode.ulong?:
                guard self.uint32() == 0, self.uint32() == 0x14 else { return nil }
            default:
                return nil
            }
            let count: Int
            let listEnd: Int
            switch self.byte() {
            case AMQPFormatCode.list8?:
                guard let size = self.byte(), let items = self.byte(), size >= 1 else { return nil }
                count = Int(items)
                listEnd = self.position - 1 + Int(size)
            case AMQPFormatCode.list32?:
                guard let size = self.uint32(), let items = self.uint32(), size >= 4, items <= 11 else { return nil }
                count = Int(items)
                listEnd = self.position - 4 + Int(size)
            default:
                return nil
            }
            guard listEnd <= self.end, count >= 1, count <= 11 else { return nil }
            var fields = Cursor(bytes: self.bytes, position: self.position, end: listEnd)
            guard let handle = fields.uint() ?? nil else { return nil }
            var header = Header(channel: channel, handle: handle)
            var tag: Range<Int>?
            if count > 1 {
                guard let id = fields.uint() else { return nil }
                header.deliveryId = id
            }
            if count > 2 {
                guard let range = fields.binary() else { return nil }
                tag = range
            }
            if count > 3 {
                guard let format = fields.uint() else { return nil }
                header.messageFormat = format
            }
            if count > 4 {
                guard let settled = fields.boolean() else { return nil }
                header.settled = settled
            }
            if count > 5 {
                guard let more = fields.boolean() else { return nil }
                header.more = more
            }
            // Fields 6 and on (rcv-settle-mode, state, resume, aborted, batchable) only as null.
            for _ in 6..<max(6, count) { guard fields.byte() == AMQPFormatCode.null else { return nil } }
            guard fields.position == listEnd else { return nil }
            self.position = listEnd
            return (header, tag)
        }

        /// A described list's descriptor code (small or full ulong) and its item count and end; `nil` for anything
        /// else.
        mutating func describedList() -> (code: UInt8, count: Int, end: Int)? {
            guard self.byte() == AMQPFormatCode.described else { return nil }
            let code: UInt8
            switch self.byte() {
            case AMQPFormatCode.smallULong?:
                guard let small = self.byte() else { return nil }
                code = small
            case AMQPFormatCode.ulong?:
                guard self.uint32() == 0, let low = self.uint32(), low <= 0xFF else { return nil }
                code = UInt8(low)
            default:
                return nil
            }
            switch self.byte() {
            case AMQPFormatCode.list0?:
                return (code, 0, self.position)
            case AMQPFormatCode.list8?:
                guard let size = self.byte(), let items = self.byte(), size >= 1 else { return nil }
                let end = self.position - 1 + Int(size)
                return end <= self.end ? (code, Int(items), end) : nil
            case AMQPFormatCode.list32?:
                guard let size = self.uint32(), let items = self.uint32(), size >= 4, items <= 64 else { return nil }
                let end = self.position - 4 + Int(size)
                return end <= self.end ? (code, Int(items), end) : nil
            default:
                return nil
            }
        }

        /// A disposition's performative with no state, or `accepted` or `released` as its state; `nil` for anything
        /// the general decoder must read.
        mutating func disposition() -> AMQPDisposition? {
            guard let (code, count, end) = self.describedList(), code == 0x15, count >= 2, count <= 6 else {
                return nil
            }
            var fields = Cursor(bytes: self.bytes, position: self.position, end: end)
            guard let role = fields.boolean() ?? nil, let first = fields.uint() ?? nil else { return nil }
            var disposition = AMQPDisposition(isReceiver: role, first: first)
            if count > 2 {
                guard let last = fields.uint() else { return nil }
                disposition.last = last
            }
            if count > 3 {
                guard let settled = fields.boolean() else { return nil }
                disposition.settled = settled
            }
            if count > 4 {
                guard fields.position < fields.end else { return nil }
                if fields.bytes[fields.position] == AMQPFormatCode.null {
                    fields.position += 1
                } else {
                    guard let (state, items, stateEnd) = fields.describedList(),
                        items == 0, stateEnd == fields.position
                    else { return nil }
                    switch state {
                    case 0x24: disposition.state = .accepted
                    case 0x26: disposition.state = .released
                    default: return nil
                    }
                }
            }
            if count > 5 { guard fields.boolean() != nil else { return nil } }
            guard fields.position == end else { return nil }
            self.position = end
            return disposition
        }

        /// A flow's performative with no `properties` (null or left out); `nil` for anything the general decoder
        /// must read (or reject).
        mutating func flow() -> AMQPFlow? {
            guard let (code, count, end) = self.describedList(), code == 0x13, count >= 4, count <= 11 else {
                return nil
            }
            var fields = Cursor(bytes: self.bytes, position: self.position, end: end)
            guard let nextIncomingId = fields.uint(), let incoming = fields.uint() ?? nil,
                let nextOutgoing = fields.uint() ?? nil, let outgoing = fields.uint() ?? nil
            else { return nil }
            var flow = AMQPFlow(
                nextIncomingId: nextIncomingId,
                incomingWindow: incoming,
                nextOutgoingId: nextOutgoing,
                outgoingWindow: outgoing
            )
            if count > 4 {
                guard let handle = fields.uint() else { return nil }
                flow.handle = handle
            }
            if count > 5 {
                guard let deliveryCount = fields.uint() else { return nil }
                flow.deliveryCount = deliveryCount
            }
            if count > 6 {
                guard let linkCredit = fields.uint() else { return nil }
                flow.linkCredit = linkCredit
            }
            // `available` (7) and `echo` (9) are not kept; read only as the types the spec gives them.
            if count > 7 { guard fields.uint() != nil else { return nil } }
            if count > 8 {
                guard let drain = fields.boolean() else { return nil }
                flow.drain = drain
            }
            if count > 9 { guard fields.boolean() != nil else { return nil } }
            if count > 10 { guard fields.byte() == AMQPFormatCode.null else { return nil } }
            guard fields.position == end else { return nil }
            self.position = end
            return flow
        }

        /// A uint or null (`.some(nil)`); `nil` for anything else.
        mutating func uint() -> UInt32?? {
            switch self.byte() {
            case AMQPFormatCode.null?: return .some(nil)
            case AMQPFormatCode.uint0?: return .some(0)
            case AMQPFormatCode.smallUInt?: return self.byte().map { .some(UInt32($0)) }
            case AMQPFormatCode.uint?: return self.uint32().map { .some($0) }
            default: return nil
            }
        }

        /// A binary or null (`.some(nil)`), as a range of the frame.
        mutating func binary() -> Range<Int>?? {
            let length: Int
            switch self.byte() {
            case AMQPFormatCode.null?: return .some(nil)
            case AMQPFormatCode.binary8?:
                guard let small = self.byte() else { return nil }
                length = Int(small)
            case AMQPFormatCode.binary32?:
                guard let large = self.uint32() else { return nil }
                length = Int(large)
            default: return nil
            }
            guard self.end - self.position >= length else { return nil }
            defer { self.position += length }
            return .some(self.position..<(self.position + length))
        }

        /// A boolean or null (`.some(nil)`).
        mutating func boolean() -> Bool?? {
            switch self.byte() {
            case AMQPFormatCode.null?: return .some(nil)
            case AMQPFormatCode.booleanTrue?: return .some(true)
            case AMQPFormatCode.booleanFalse?: return .some(false)
            case AMQPFormatCode.boolean?:
                switch self.byte() {
                case 0?: return .some(false)
                case 1?: return .some(true)
                default: return nil
                }
            default: return nil
            }
        }
    }
}

/// The other hot-path frame for a sender: the `disposition` that settles its messages, read in place without building
/// `AMQPValue`s when its state is absent, `accepted` or `released` (anything else is left to the general decoder).
public enum AMQPDispositionFrame {
    /// What ``read(_:maximumFrameSize:)`` found at the start of a buffer.
    public enum Read: Sendable, Equatable {
        /// Not a whole frame yet.
        case incomplete
        /// A disposition this path reads, its channel and the frame's size.
        case disposition(AMQPDisposition, channel: UInt16, size: Int)
        /// Another frame: decode it with ``AMQPFramer`` and ``AMQPPerformative/decode(_:)``.
        case other
    }

    /// Reads the frame at the start of `buffer` in place. Checks the frame header as ``AMQPFramer`` does and throws
    /// ``AMQPCodecError`` where it would; every read is bounds-checked against the frame.
    public static func read(_ buffer: ArraySlice<UInt8>, maximumFrameSize: Int) throws(AMQPCodecError) -> Read {
        guard let frame = try AMQPTransferFrame.performative(in: buffer, maximumFrameSize, { $0.disposition() }) else {
            return .incomplete
        }
        return frame.value.map { .disposition($0, channel: frame.channel, size: frame.size) } ?? .other
    }
}

/// The frame a sender reads besides dispositions: the `flow` that grants it credit and window, read in place without
/// building `AMQPValue`s when it carries no `properties` (anything else is left to the general decoder).
public enum AMQPFlowFrame {
    /// What ``read(_:maximumFrameSize:)`` found at the start of a buffer.
    public enum Read: Sendable, Equatable {
        /// Not a whole frame yet.
        case incomplete
        /// A flow this path reads, its channel and the frame's size.
        case flow(AMQPFlow, channel: UInt16, size: Int)
        /// Another frame: decode it with ``AMQPFramer`` and ``AMQPPerformative/decode(_:)``.
        case other
    }

    /// Reads the frame at the start of `buffer` in place. Checks the frame header as ``AMQPFramer`` does and throws
    /// ``AMQPCodecError`` where it would; every read is bounds-checked against the frame.
    public static func read(_ buffer: ArraySlice<UInt8>, maximumFrameSize: Int) throws(AMQPCodecError) -> Read {
        guard let frame = try AMQPTransferFrame.performative(in: buffer, maximumFrameSize, { $0.flow() }) else {
            return .incomplete
        }
        return frame.value.map { .flow($0, channel: frame.channel, size: frame.size) } ?? .other
    }
}
