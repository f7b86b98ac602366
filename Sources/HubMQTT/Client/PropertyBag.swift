import AzureIoTCore

/// The URL-encoded property bag IoT Hub appends to telemetry and C2D topics: `k=v&k=v`, keys and values RFC 3986
/// percent-encoded with upper-case hex; system keys are `$.`-prefixed and sent as `%24.`.
public struct PropertyBag: Sendable, Equatable {
    /// The pairs in order; a `nil` value is a key without `=`.
    public var pairs: [(key: String, value: String?)]

    /// A bag from pairs.
    public init(_ pairs: [(key: String, value: String?)] = []) { self.pairs = pairs }

    /// Bags are equal when they hold the same pairs in the same order.
    public static func == (lhs: PropertyBag, rhs: PropertyBag) -> Bool {
        lhs.pairs.count == rhs.pairs.count
            && zip(lhs.pairs, rhs.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// The value of `key` (`nil` if absent or without `=`).
    public subscript(key: String) -> String? {
        self.pairs.first { $0.key == key }?.value ?? nil
    }

    /// Whether `key` is present, with or without a value.
    public func contains(_ key: String) -> Bool { self.pairs.contains { $0.key == key } }

    /// `k=v&k=v`, every key and value percent-encoded (so `$` goes out as `%24`).
    public var encoded: String {
        self.pairs.map { pair in
            let key = PercentEncoding.encode(pair.key)
            return pair.value.map { "\(key)=\(PercentEncoding.encode($0))" } ?? key
        }.joined(separator: "&")
    }

    /// Parses a property bag; accepts `$.ct` literally or as `%24.ct`. A key without `=` has a `nil` value, `k=` an
    /// empty one. Throws ``HubMQTTError/Code/malformedTopic`` for a bad escape.
    public init(parsing text: Substring) throws(HubMQTTError) {
        var pairs: [(key: String, value: String?)] = []
        guard !text.isEmpty else {
            self.pairs = []
            return
        }
        for field in text.split(separator: "&", omittingEmptySubsequences: true) {
            do {
                if let equals = field.firstIndex(of: "=") {
                    pairs.append(
                        (
                            try PercentEncoding.decode(field[..<equals]),
                            try PercentEncoding.decode(field[field.index(after: equals)...])
                        )
                    )
                } else {
                    pairs.append((try PercentEncoding.decode(field), nil))
                }
            } catch {
                throw HubMQTTError(.malformedTopic, "the property bag has an invalid percent-escape")
            }
        }
        self.pairs = pairs
    }
}
