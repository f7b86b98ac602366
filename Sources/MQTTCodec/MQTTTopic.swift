/// Topic name and topic filter rules of MQTT 3.1.1 §4.7.
public enum MQTTTopic {
    /// Throws unless `name` is a valid topic name: at least one byte [MQTT-4.7.3-1], no `+` or `#` [MQTT-3.3.2-2],
    /// no U+0000, at most 65,535 UTF-8 bytes.
    public static func validateName(_ name: String) throws(MQTTCodecError) {
        var copy = name
        let (count, forbidden) = copy.withUTF8 { bytes in (bytes.count, ByteScan.scanTopicName(bytes).forbidden) }
        guard count > 0, count <= 65_535 else {
            throw MQTTCodecError(.invalidTopicName, "a topic name must be 1 to 65,535 bytes")
        }
        guard !forbidden else {
            throw MQTTCodecError(.invalidTopicName, "a topic name must not contain '+', '#' or U+0000")
        }
    }

    /// Throws unless `bytes` is a valid topic name: 1 to 65,535 bytes of well-formed UTF-8 without `+`, `#` or U+0000.
    /// One pass for ASCII names; others also go through the standard library's UTF-8 validator.
    static func validateName(bytes: ArraySlice<UInt8>) throws(MQTTCodecError) {
        guard !bytes.isEmpty, bytes.count <= 65_535 else {
            throw MQTTCodecError(.invalidTopicName, "a topic name must be 1 to 65,535 bytes")
        }
        let verdict = bytes.withUnsafeBufferPointer { buffer -> (forbidden: Bool, ascii: Bool) in
            ByteScan.scanTopicName(buffer)
        }
        if verdict.forbidden {
            // U+0000 is forbidden in every MQTT string [MQTT-1.5.3-2]; wildcards only in topic names [MQTT-3.3.2-2].
            if bytes.contains(0) { throw MQTTCodecError(.invalidUTF8, "a string contains U+0000") }
            throw MQTTCodecError(.invalidTopicName, "a topic name must not contain '+' or '#'")
        }
        if !verdict.ascii, bytes.withUnsafeBufferPointer({ String(validating: $0, as: UTF8.self) }) == nil {
            throw MQTTCodecError(.invalidUTF8, "a topic name is not well-formed UTF-8")
        }
    }

    /// Throws unless `filter` is a valid topic filter: at least one byte, `#` only as the whole last level
    /// [MQTT-4.7.1-2], `+` only as a whole level [MQTT-4.7.1-3], no U+0000.
    public static func validateFilter(_ filter: String) throws(MQTTCodecError) {
        let utf8 = Array(filter.utf8)
        guard !utf8.isEmpty, utf8.count <= 65_535, !utf8.contains(0) else {
            throw MQTTCodecError(.invalidTopicFilter, "a topic filter must be 1 to 65,535 bytes without U+0000")
        }
        let levels = utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains(UInt8(ascii: "#")) {
                guard level.count == 1, index == levels.count - 1 else {
                    throw MQTTCodecError(.invalidTopicFilter, "'#' must be a whole level and the last one")
                }
            }
            if level.contains(UInt8(ascii: "+")) && level.count != 1 {
                throw MQTTCodecError(.invalidTopicFilter, "'+' must be a whole level")
            }
        }
    }
}
