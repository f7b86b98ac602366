import AzureIoTCore
import Foundation

/// A JSON value: twin documents, DPS payloads and anything else the emulator stores without a fixed schema.
public enum JSONDocument: Sendable, Equatable, Codable {
    /// No value.
    case null
    /// `true` or `false`.
    case bool(Bool)
    /// A number.
    case number(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONDocument])
    /// An object.
    case object([String: JSONDocument])

    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONDocument].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONDocument].self))
        }
    }

    /// Encodes the value as JSON.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value == value.rounded(), abs(value) < 9_007_199_254_740_992 { try container.encode(Int64(value)) } else { try container.encode(value) }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// How deeply arrays and objects may nest in what the emulator parses from a peer. IoT Hub refuses twins deeper
    /// than 10 levels; 32 leaves room for DPS payloads while a document nested hundreds deep is refused unread.
    public static let maximumDepth = 32

    /// Parses JSON bytes; `nil` if they are not JSON or nest deeper than ``maximumDepth``.
    public init?(parsing bytes: [UInt8]) {
        guard JSONNesting.depth(of: bytes, stoppingAbove: Self.maximumDepth) <= Self.maximumDepth,
              let value = try? JSONDecoder().decode(JSONDocument.self, from: Data(bytes))
        else { return nil }
        self = value
    }

    /// The compact JSON text, keys sorted.
    public var jsonBytes: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? Array(encoder.encode(self))) ?? Array("null".utf8)
    }

    /// The members of an object (empty for anything else).
    public var objectValue: [String: JSONDocument] {
        if case .object(let members) = self { return members }
        return [:]
    }

    /// Applies a JSON merge patch (RFC 7396), the way twin patches work: `null` deletes a key.
    public func merging(_ patch: JSONDocument) -> JSONDocument {
        guard case .object(let changes) = patch else { return patch }
        var members = self.objectValue
        for (key, value) in changes {
            if value == .null {
                members[key] = nil
            } else if let existing = members[key], case .object = existing, case .object = value {
                members[key] = existing.merging(value)
            } else {
                members[key] = value
            }
        }
        return .object(members)
    }
}
