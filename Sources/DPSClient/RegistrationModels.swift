import AzureIoTCore
public import Foundation

/// The state of a registration as DPS reports it (`unassigned`, `assigning`, `assigned`, `failed`, `disabled`).
public struct RegistrationStatus: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
    /// The value on the wire.
    public let rawValue: String
    /// A value from its wire value (open-ended: unknown values are kept).
    public init(rawValue: String) { self.rawValue = rawValue }
    /// The name, as written in code.
    public var description: String { self.rawValue }

    /// Not yet assigned.
    public static let unassigned = RegistrationStatus(rawValue: "unassigned")
    /// The service is assigning a hub; poll again.
    public static let assigning = RegistrationStatus(rawValue: "assigning")
    /// Assigned to a hub.
    public static let assigned = RegistrationStatus(rawValue: "assigned")
    /// Assignment failed (see the error code).
    public static let failed = RegistrationStatus(rawValue: "failed")
    /// The enrollment is disabled.
    public static let disabled = RegistrationStatus(rawValue: "disabled")
}

/// What DPS returns about a device registration (`DeviceRegistrationResult`).
public struct DeviceRegistrationResult: Sendable, Decodable {
    /// Details of an X.509 certificate DPS saw.
    public struct CertificateInfo: Sendable, Decodable {
        /// The certificate's subject.
        public let subjectName: String?
        /// SHA-1 thumbprint (hex).
        public let sha1Thumbprint: String?
        /// SHA-256 thumbprint (hex).
        public let sha256Thumbprint: String?
        /// The certificate's issuer.
        public let issuerName: String?
        /// Start of validity (ISO 8601).
        public let notBeforeUtc: String?
        /// End of validity (ISO 8601).
        public let notAfterUtc: String?
        /// The serial number (hex).
        public let serialNumber: String?
        /// The X.509 version.
        public let version: Int?
    }
    /// X.509 attestation details.
    public struct X509Details: Sendable, Decodable {
        /// The device certificate DPS saw.
        public let certificateInfo: CertificateInfo?
        /// The enrollment group that matched, if a group did.
        public let enrollmentGroupId: String?
        /// The CA certificate that signed the device certificate.
        public let signingCertificateInfo: CertificateInfo?
    }
    /// Symmetric-key attestation details.
    public struct SymmetricKeyDetails: Sendable, Decodable {
        /// The enrollment group that matched, if a group did.
        public let enrollmentGroupId: String?
    }

    /// The registration id.
    public let registrationId: String?
    /// When the registration was created (ISO 8601 text as the service sends it).
    public let createdDateTimeUtc: String?
    /// The IoT Hub host the device was assigned to.
    public let assignedHub: String?
    /// The device id in that hub.
    public let deviceId: String?
    /// The registration status.
    public let status: RegistrationStatus?
    /// Why this assignment happened (`initialAssignment`, `deviceDataMigrated`, …).
    public let substatus: String?
    /// The 6-digit error code when the registration failed.
    public let errorCode: Int?
    /// The error message when the registration failed.
    public let errorMessage: String?
    /// When the registration last changed.
    public let lastUpdatedDateTimeUtc: String?
    /// The registration's etag.
    public let etag: String?
    /// X.509 enrollment details.
    public let x509: X509Details?
    /// Symmetric-key enrollment details.
    public let symmetricKey: SymmetricKeyDetails?
    /// The certificate DPS issued for the registration's certificate signing request (api-version
    /// `2025-07-01-preview`): base64 DER, leaf first, root last.
    public let issuedCertificateChain: [String]?
    /// The custom payload the allocation policy returned, as raw JSON (numbers exactly as DPS sent them); decode it
    /// with ``decodePayload(as:)``.
    public internal(set) var payloadJSON: Data?

    enum CodingKeys: String, CodingKey {
        case registrationId, createdDateTimeUtc, assignedHub, deviceId, status, substatus, errorCode, errorMessage
        case lastUpdatedDateTimeUtc, etag, x509, symmetricKey, payload, issuedCertificateChain
    }

    /// Decodes the service's JSON, tolerating absent fields.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.registrationId = try container.decodeIfPresent(String.self, forKey: .registrationId)
        self.createdDateTimeUtc = try container.decodeIfPresent(String.self, forKey: .createdDateTimeUtc)
        self.assignedHub = try container.decodeIfPresent(String.self, forKey: .assignedHub)
        self.deviceId = try container.decodeIfPresent(String.self, forKey: .deviceId)
        self.status = try container.decodeIfPresent(RegistrationStatus.self, forKey: .status)
        self.substatus = try container.decodeIfPresent(String.self, forKey: .substatus)
        self.errorCode = try container.decodeIfPresent(Int.self, forKey: .errorCode)
        self.errorMessage = try container.decodeIfPresent(String.self, forKey: .errorMessage)
        self.lastUpdatedDateTimeUtc = try container.decodeIfPresent(String.self, forKey: .lastUpdatedDateTimeUtc)
        self.etag = try container.decodeIfPresent(String.self, forKey: .etag)
        self.x509 = try container.decodeIfPresent(X509Details.self, forKey: .x509)
        self.symmetricKey = try container.decodeIfPresent(SymmetricKeyDetails.self, forKey: .symmetricKey)
        self.issuedCertificateChain = try container.decodeIfPresent([String].self, forKey: .issuedCertificateChain)
        if let payload = try container.decodeIfPresent(JSONValue.self, forKey: .payload), payload != .null {
            self.payloadJSON = try JSONEncoder().encode(payload)
        } else {
            self.payloadJSON = nil
        }
    }

    /// Decodes the returned payload as `type`; `nil` if the service returned none.
    public func decodePayload<T: Decodable>(as type: T.Type) throws -> T? {
        guard let payloadJSON else { return nil }
        return try JSONDecoder().decode(T.self, from: payloadJSON)
    }
}

/// The answer to a register or operation-status request (`RegistrationOperationStatus`).
struct RegistrationOperationStatus: Decodable {
    let operationId: String?
    let status: RegistrationStatus?
    var registrationState: DeviceRegistrationResult?
}

/// The error body DPS sends (`ProvisioningServiceErrorDetails`).
struct ServiceErrorDetails: Decodable {
    let errorCode: Int?
    let trackingId: String?
    let message: String?
}
