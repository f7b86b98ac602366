/// The resource a SAS token grants access to (its `sr`, before encoding).
public struct SASResource: Sendable, CustomStringConvertible {
    /// The resource URI as signed, before percent-encoding, e.g. `myhub.azure-devices.net/devices/dev1`.
    public let uri: String
    /// The `sr` value as it goes on the wire: RFC 3986 percent-encoded, upper-case hex (computed once).
    public let encoded: String

    /// A resource from its URI (no scheme), e.g. `myhub.azure-devices.net/devices/dev1`.
    public init(uri: String) {
        self.uri = uri
        self.encoded = PercentEncoding.encode(uri)
    }

    /// `{hubHost}/devices/{deviceId}`: what a device key signs for MQTT, AMQP and HTTPS.
    public static func device(hubHost: String, deviceId: String) -> SASResource {
        SASResource(uri: "\(hubHost)/devices/\(deviceId)")
    }

    /// `{hubHost}/devices/{deviceId}/modules/{moduleId}`: what a module key signs.
    public static func module(hubHost: String, deviceId: String, moduleId: String) -> SASResource {
        SASResource(uri: "\(hubHost)/devices/\(deviceId)/modules/\(moduleId)")
    }

    /// `{idScope}/registrations/{registrationId}`: what a DPS enrollment key signs (with `skn=registration`).
    public static func registration(idScope: String, registrationId: String) -> SASResource {
        SASResource(uri: "\(idScope)/registrations/\(registrationId)")
    }

    /// A readable summary that never contains secrets.
    public var description: String { self.uri }
}

extension SASResource: Hashable {
    /// Resources are equal when their URIs are.
    public static func == (lhs: SASResource, rhs: SASResource) -> Bool { lhs.uri == rhs.uri }
    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) { hasher.combine(self.uri) }
}
