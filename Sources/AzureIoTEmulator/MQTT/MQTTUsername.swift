import AzureIoTCore

/// The user name of an MQTT CONNECT, in each form IoT Hub and IoT Edge accept:
///
/// ```
/// {hubHost}/{deviceId}[/{moduleId}]/?{properties}    the documented form, sent by every current Azure SDK
/// {hubHost}/{deviceId}[/{moduleId}]/{properties}     the older form of the write-ups' mosquitto bridge and
///                                                    Node-RED settings (`…/thermostat-1/api-version=2016-11-14`)
/// properties = key=value *("&" key=value), values percent-encoded
/// ```
///
/// Sources: the two forms are the ones Azure IoT Edge's `MqttUsernameParser` names, and the write-ups show the second
/// working against IoT Hub and IoT Edge; `../shared/reference/azure-iot-protocol.md` §3.1 gives the SDKs' forms
/// (`DeviceClientType`, `model-id`, C's `ClientVersion`): host name and ids are sent as they are, query values
/// percent-encoded. `api-version` is required, in any of the dated forms (`2016-11-14` … `2021-04-12`, later ones and
/// `-preview` suffixes); other properties are kept and not checked, as the hub does.
struct MQTTUsername: Equatable {
    /// The hub host name as written (compared without regard to case).
    var hubHost: String
    /// The device, and the module for a module's connection.
    var identity: IdentityName
    /// `api-version`.
    var apiVersion: String
    /// Every property, percent-decoded, `api-version` included.
    var properties: [String: String]

    /// Why a user name is not one IoT Hub accepts; the text goes into the emulator's log and names no secret.
    enum ParseError: Error, Equatable, CustomStringConvertible {
        case notHubDeviceProperties
        case missingAPIVersion
        case malformedAPIVersion(String)
        case malformedEscape

        var description: String {
            switch self {
            case .notHubDeviceProperties:
                return "the username is not '{hub host}/{device id}[/{module id}]/[?]api-version=…'"
            case .missingAPIVersion: return "the username has no api-version"
            case .malformedAPIVersion(let value):
                return "the username's api-version '\(value)' is not a date such as 2021-04-12"
            case .malformedEscape: return "the username has an invalid percent-escape"
            }
        }
    }

    init(parsing text: String) throws(ParseError) {
        let path: Substring
        let query: Substring
        if let question = text.firstIndex(of: "?") {
            // `…/device/?props`: the path ends with the slash before `?`.
            let beforeQuestion = text[..<question]
            guard beforeQuestion.last == "/" else { throw .notHubDeviceProperties }
            path = beforeQuestion.dropLast()
            query = text[text.index(after: question)...]
        } else {
            // `…/device/props`: the properties start at the first segment that holds a `=`, so a value sent without
            // encoding its slashes still belongs to them.
            guard let equals = text.firstIndex(of: "="), let slash = text[..<equals].lastIndex(of: "/") else {
                throw .notHubDeviceProperties
            }
            path = text[..<slash]
            query = text[text.index(after: slash)...]
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard (2...3).contains(segments.count), segments.allSatisfy({ !$0.isEmpty }) else {
            throw .notHubDeviceProperties
        }
        var properties: [String: String] = [:]
        for field in query.split(separator: "&", omittingEmptySubsequences: true) {
            let pair = field.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            do {
                let key = try PercentEncoding.decode(pair[0])
                properties[key] = pair.count == 2 ? try PercentEncoding.decode(pair[1]) : ""
            } catch {
                throw .malformedEscape
            }
        }
        guard let apiVersion = properties["api-version"], !apiVersion.isEmpty else { throw .missingAPIVersion }
        guard Self.isDatedVersion(apiVersion) else { throw .malformedAPIVersion(apiVersion) }
        self.hubHost = String(segments[0])
        self.identity = IdentityName(
            deviceId: String(segments[1]),
            moduleId: segments.count == 3 ? String(segments[2]) : nil
        )
        self.apiVersion = apiVersion
        self.properties = properties
    }

    /// `YYYY-MM-DD`, optionally followed by a `-suffix` such as `-preview`.
    static func isDatedVersion(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        guard bytes.count >= 10, bytes.count == 10 || bytes[10] == UInt8(ascii: "-") else { return false }
        for (offset, byte) in bytes.prefix(10).enumerated() {
            let isDash = offset == 4 || offset == 7
            guard isDash ? byte == UInt8(ascii: "-") : (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else {
                return false
            }
        }
        return bytes.count == 10 || bytes.count > 11
    }
}
