public import AzureIoTCore

/// Where and how a registration request goes: the DPS REST paths for one ID scope and registration id, and the SAS
/// resource that authorises them (`{scope}/registrations/{id}`, signed with `skn=registration`).
public struct RegistrationRoute: Hashable, Sendable {
    /// The global endpoint every device starts from.
    public static let globalEndpoint = "global.azure-devices-provisioning.net"
    /// The stable DPS device API version.
    public static let defaultAPIVersion = "2021-10-01"

    /// The DPS ID scope (e.g. `0ne00057505`).
    public var idScope: String
    /// The registration id (the device id to be, or the X.509 leaf CN).
    public var registrationId: String
    /// The `api-version` query value.
    public var apiVersion: String

    /// A route for one device's registration.
    public init(idScope: String, registrationId: String, apiVersion: String = RegistrationRoute.defaultAPIVersion) {
        self.idScope = idScope
        self.registrationId = registrationId
        self.apiVersion = apiVersion
    }

    /// `/{scope}/registrations/{id}/register?api-version=…` (PUT).
    public var registerPath: String {
        "/\(self.encodedScope)/registrations/\(self.encodedId)/register?api-version=\(PercentEncoding.encode(self.apiVersion))"
    }

    /// `/{scope}/registrations/{id}/operations/{operationId}?api-version=…` (GET).
    public func operationPath(operationId: String) -> String {
        "/\(self.encodedScope)/registrations/\(self.encodedId)/operations/\(PercentEncoding.encode(operationId))"
            + "?api-version=\(PercentEncoding.encode(self.apiVersion))"
    }

    /// `/{scope}/registrations/{id}?api-version=…` (POST, registration status lookup).
    public var statusPath: String {
        "/\(self.encodedScope)/registrations/\(self.encodedId)?api-version=\(PercentEncoding.encode(self.apiVersion))"
    }

    /// The resource a DPS SAS token signs.
    public var sasResource: SASResource {
        .registration(idScope: self.idScope, registrationId: self.registrationId)
    }

    private var encodedScope: String { PercentEncoding.encode(self.idScope) }
    private var encodedId: String { PercentEncoding.encode(self.registrationId) }
}
