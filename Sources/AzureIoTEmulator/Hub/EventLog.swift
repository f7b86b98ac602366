import Foundation

/// One device-to-cloud message as the Event Hub-compatible endpoint serves it: its place in a partition.
struct PartitionEvent: Sendable {
    var sequenceNumber: Int64
    /// Byte offset in the partition, as Event Hubs numbers it (a string on the wire).
    var offset: Int64
    var enqueuedTime: Date
    var telemetry: ReceivedTelemetry
}

/// Where a reader starts in a partition: the selector filter's `amqp.annotation.x-opt-…` comparisons.
enum EventPosition: Equatable {
    case sequenceNumber(Int64, inclusive: Bool)
    case offset(Int64, inclusive: Bool)
    case enqueuedTime(milliseconds: Int64, inclusive: Bool)
    /// Only events enqueued after the reader attached (`@latest`).
    case latest

    /// Reads a selector filter such as `amqp.annotation.x-opt-offset > '-1'` (Azure's Event Hubs SDKs write these);
    /// `nil` when it is not one of the three forms.
    init?(selector: String) {
        let parts = selector.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 3, parts[1] == ">" || parts[1] == ">=", parts[2].count >= 2, parts[2].first == "'",
            parts[2].last == "'"
        else { return nil }
        let inclusive = parts[1] == ">="
        let value = parts[2].dropFirst().dropLast()
        switch parts[0].lowercased() {
        case "amqp.annotation.x-opt-offset":
            if value == "@latest" {
                self = .latest
                return
            }
            guard let offset = Int64(value) else { return nil }
            self = .offset(offset, inclusive: inclusive)
        case "amqp.annotation.x-opt-sequence-number":
            guard let number = Int64(value) else { return nil }
            self = .sequenceNumber(number, inclusive: inclusive)
        case "amqp.annotation.x-opt-enqueued-time":
            guard let milliseconds = Int64(value) else { return nil }
            self = .enqueuedTime(milliseconds: milliseconds, inclusive: inclusive)
        default:
            return nil
        }
    }
}

/// The hub's telemetry by partition, with Event Hubs' numbering and IoT Hub's retention by count and age. Pure: a
/// value type the hub actor owns.
struct EventLog {
    let partitionCount: Int
    let retainedEventsPerPartition: Int
    let retention: TimeInterval
    private(set) var partitions: [[PartitionEvent]]
    private var nextSequenceNumber: [Int64]
    private var nextOffset: [Int64]

    init(partitionCount: Int, retainedEventsPerPartition: Int, retention: TimeInterval) {
        self.partitionCount = max(1, partitionCount)
        self.retainedEventsPerPartition = max(1, retainedEventsPerPartition)
        self.retention = retention
        self.partitions = Array(repeating: [], count: self.partitionCount)
        self.nextSequenceNumber = Array(repeating: 0, count: self.partitionCount)
        self.nextOffset = Array(repeating: 0, count: self.partitionCount)
    }

    /// A device's partition: a stable hash (FNV-1a) of its id, so one device's messages stay in order in one
    /// partition, as IoT Hub keeps them.
    func partition(forDevice deviceId: String) -> Int {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in deviceId.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return Int(hash % UInt64(self.partitionCount))
    }

    /// Appends a message to its device's partition; returns the partition.
    @discardableResult
    mutating func append(_ telemetry: ReceivedTelemetry, now: Date = Date()) -> Int {
        let partition = self.partition(forDevice: telemetry.deviceId)
        let event = PartitionEvent(
            sequenceNumber: self.nextSequenceNumber[partition],
            offset: self.nextOffset[partition],
            enqueuedTime: now,
            telemetry: telemetry
        )
        self.partitions[partition].append(event)
        self.nextSequenceNumber[partition] += 1
        self.nextOffset[partition] += Int64(max(1, telemetry.body.count + 64))
        self.trim(partition, now: now)
        return partition
    }

    /// Puts back a stored event (in sequence order per partition), continuing the numbering after it.
    mutating func restore(_ event: PartitionEvent, partition: Int) {
        guard (0..<self.partitionCount).contains(partition) else { return }
        self.partitions[partition].append(event)
        self.nextSequenceNumber[partition] = max(self.nextSequenceNumber[partition], event.sequenceNumber + 1)
        self.nextOffset[partition] = max(
            self.nextOffset[partition],
            event.offset + Int64(max(1, event.telemetry.body.count + 64))
        )
    }

    /// Drops events past the retention count or age.
    mutating func trim(_ partition: Int, now: Date = Date()) {
        let cutoff = now - self.retention
        var drop = max(0, self.partitions[partition].count - self.retainedEventsPerPartition)
        while drop < self.partitions[partition].count, self.partitions[partition][drop].enqueuedTime < cutoff {
            drop += 1
        }
        if drop > 0 { self.partitions[partition].removeFirst(drop) }
    }

    /// The sequence number a reader starting at `position` reads first.
    func firstSequenceNumber(in partition: Int, from position: EventPosition) -> Int64 {
        let events = self.partitions[partition]
        let end = self.nextSequenceNumber[partition]
        switch position {
        case .latest:
            return end
        case .sequenceNumber(let number, let inclusive):
            return inclusive ? number : number &+ 1
        case .offset(let offset, let inclusive):
            return events.first { inclusive ? $0.offset >= offset : $0.offset > offset }?.sequenceNumber ?? end
        case .enqueuedTime(let milliseconds, let inclusive):
            let time = Date(unixMilliseconds: milliseconds)
            return events.first { inclusive ? $0.enqueuedTime >= time : $0.enqueuedTime > time }?.sequenceNumber ?? end
        }
    }

    /// Up to `limit` events from sequence number `first` on (retained ones only).
    func events(in partition: Int, from first: Int64, limit: Int) -> [PartitionEvent] {
        guard limit > 0, let start = self.partitions[partition].firstIndex(where: { $0.sequenceNumber >= first }) else {
            return []
        }
        return Array(self.partitions[partition][start...].prefix(limit))
    }

    /// What `$management` READ of a partition answers.
    struct PartitionProperties {
        var beginSequenceNumber: Int64
        var lastSequenceNumber: Int64
        var lastOffset: Int64
        var lastEnqueuedTime: Date?
        var isEmpty: Bool
    }

    func properties(of partition: Int) -> PartitionProperties {
        let events = self.partitions[partition]
        return PartitionProperties(
            beginSequenceNumber: events.first?.sequenceNumber ?? self.nextSequenceNumber[partition],
            lastSequenceNumber: events.last?.sequenceNumber ?? (self.nextSequenceNumber[partition] - 1),
            lastOffset: events.last?.offset ?? -1,
            lastEnqueuedTime: events.last?.enqueuedTime,
            isEmpty: events.isEmpty
        )
    }
}
