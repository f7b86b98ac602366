import AzureIoTCore
import AzureIoTTesting
import Foundation
import Logging

/// The emulated Device Provisioning Service: the REST API of `2021-10-01` (register, operation status, registration
/// status lookup), SAS and X.509 attestation against the configured enrollments, and allocation to the emulated hub.
actor ProvisioningService {
    private struct Attested {
        var registrationId: String
        var deviceId: String
        var groupName: String?
        var attestation: ProvisioningRecord.Attestation
        var deviceKey: SymmetricKey?
        var certificate: X509Certificate?
        var groupCAs: [X509Certificate]
        var enabled: Bool
        var desired: JSONValue?
    }

    private struct Operation {
        var attested: Attested
        var payload: JSONValue?
        var created: Date
        /// The certificate issued for the registration's `csr`, base64 DER, leaf first.
        var issuedChain: [String]?
        /// Started by the first status lookup; later (or concurrent) lookups of the same operation answer its
        /// registration state again, as DPS does for a client that polls in a loop.
        var completion: Task<JSONValue, Never>?
    }

    /// Operations kept for status lookups; the oldest is forgotten past this many.
    static let maximumOperations = 4096

    private let configuration: EmulatorConfiguration
    private let hub: EmulatedHub
    private let logger: Logger
    /// Issues certificates for registrations that send a `csr`.
    private let certificateAuthority: CertificateAuthority?
    private let individualKeys: [String: SymmetricKey]
    private let groupKeys: [(name: String, key: SymmetricKey)]
    private let groupCAs: [(name: String, certificates: [X509Certificate])]
    private var operations: [String: Operation] = [:]
    private var operationOrder: [String] = []
    private var results: [String: JSONValue] = [:]

    init(
        configuration: EmulatorConfiguration,
        hub: EmulatedHub,
        certificateAuthority: CertificateAuthority? = nil,
        logger: Logger
    ) throws(AzureIoTError) {
        self.configuration = configuration
        self.hub = hub
        self.certificateAuthority = certificateAuthority
        self.logger = logger
        var individualKeys: [String: SymmetricKey] = [:]
        for enrollment in configuration.provisioning.individualEnrollments {
            if let key = enrollment.primaryKey {
                individualKeys[enrollment.registrationId.lowercased()] = try SymmetricKey(base64: key)
            }
        }
        self.individualKeys = individualKeys
        var groupKeys: [(String, SymmetricKey)] = []
        var groupCAs: [(String, [X509Certificate])] = []
        for group in configuration.provisioning.enrollmentGroups {
            if let key = group.primaryKey { groupKeys.append((group.name, try SymmetricKey(base64: key))) }
            if let pem = group.caCertificatePEM {
                groupCAs.append((group.name, try X509Certificate.certificates(fromPEM: pem)))
            } else if let file = group.caCertificateFile {
                groupCAs.append((group.name, try X509Certificate.certificates(fromPEMFile: file)))
            }
        }
        self.groupKeys = groupKeys
        self.groupCAs = groupCAs
    }

    // MARK: - Routing

    func handle(_ request: HTTPRequest, peerCertificates: [X509Certificate]) async -> HTTPResponse {
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard segments.count >= 3, segments[1] == "registrations" else {
            return Self.error(404, 404_001, "no such resource: \(request.path)")
        }
        guard segments[0] == self.configuration.provisioning.idScope else {
            return Self.error(404, 404_201, "the ID scope '\(segments[0])' does not exist")
        }
        guard request.query["api-version"]?.isEmpty == false else {
            return Self.error(400, 400_004, "the api-version query parameter is required")
        }
        if let retryAfter = await self.hub.consumeProvisioningThrottle() {
            var response = Self.error(429, 429_001, "the request was throttled")
            response.headers.append(("Retry-After", String(retryAfter)))
            return response
        }
        let registrationId = segments[2]
        switch (request.method, segments.count) {
        case ("PUT", 4) where segments[3] == "register":
            return await self.register(registrationId, request, peerCertificates)
        case ("GET", 5) where segments[3] == "operations":
            return await self.operationStatus(registrationId, operationId: segments[4], request, peerCertificates)
        case ("POST", 3):
            return self.statusLookup(registrationId, request, peerCertificates)
        default:
            return Self.error(405, 405_001, "\(request.method) \(request.path) is not a DPS operation")
        }
    }

    /// Why `authorization` (a SAS token) or the client's `certificates` do not attest `registrationId` in
    /// `idScope`, or `nil` when they do: DPS over MQTT checks the credentials of its CONNECT with this.
    /// Whether the credentials attest the registration, for the message transports (MQTT, AMQP); a refusal is
    /// logged with its reason, naming the transport.
    func attests(
        idScope: String,
        registrationId: String,
        authorization: String?,
        certificates: [X509Certificate],
        transport: String
    ) -> Bool {
        guard
            let failure = self.attestationFailure(
                idScope: idScope,
                registrationId: registrationId,
                authorization: authorization,
                certificates: certificates
            )
        else { return true }
        self.logger.info(
            "DPS over \(transport): credentials refused",
            metadata: ["registrationId": "\(registrationId)", "reason": "\(failure)"]
        )
        return false
    }

    func attestationFailure(
        idScope: String,
        registrationId: String,
        authorization: String?,
        certificates: [X509Certificate]
    ) -> String? {
        guard idScope == self.configuration.provisioning.idScope else {
            return "the ID scope '\(idScope)' does not exist"
        }
        var headers: [String: String] = [:]
        headers["authorization"] = authorization
        let request = HTTPRequest(
            method: "CONNECT",
            path: "",
            query: [:],
            headers: headers,
            body: [],
            allowsUnnamedSASKey: true
        )
        switch self.attest(registrationId, request, certificates) {
        case .success: return nil
        case .failure(let response):
            let message = (try? JSONValue(parsing: response.body))?["message"]?.stringValue
            return message ?? "HTTP \(response.status)"
        }
    }

    // MARK: - Operations

    private func register(_ registrationId: String, _ request: HTTPRequest, _ certificates: [X509Certificate]) async
        -> HTTPResponse
    {
        let attested: Attested
        switch self.attest(registrationId, request, certificates) {
        case .success(let value): attested = value
        case .failure(let response): return response
        }
        var payload: JSONValue?
        var issuedChain: [String]?
        if !request.body.isEmpty {
            guard let body = (try? JSONValue(parsing: request.body)), case .object(let members) = body else {
                return Self.error(400, 400_002, "the request body is not a JSON object")
            }
            if case .string(let bodyId)? = members["registrationId"], bodyId.lowercased() != registrationId.lowercased()
            {
                return Self.error(400, 400_002, "the body's registrationId does not match the path")
            }
            if let value = members["payload"], value != .null { payload = value }
            if let csr = members["csr"], csr != .null {
                switch self.issue(csr, for: registrationId, apiVersion: request.query["api-version"] ?? "") {
                case .success(let chain): issuedChain = chain
                case .failure(let error): return error.response
                }
            }
        }
        let operationId = "4.\(String(UInt64.random(in: 0...UInt64.max), radix: 16)).\(UUID().uuidString.lowercased())"
        self.operations[operationId] = Operation(
            attested: attested,
            payload: payload,
            created: Date(),
            issuedChain: issuedChain
        )
        self.operationOrder.append(operationId)
        if self.operationOrder.count > Self.maximumOperations {
            self.operations[self.operationOrder.removeFirst()] = nil
        }
        self.logger.info(
            "DPS registration started",
            metadata: ["registrationId": "\(registrationId)", "attestation": "\(attested.attestation)"]
        )
        return self.assigning(operationId)
    }

    private func assigning(_ operationId: String) -> HTTPResponse {
        HTTPResponse(
            status: 202,
            headers: [
                ("Retry-After", String(self.configuration.provisioningRetryAfterSeconds)), ("Location", operationId),
            ],
            body: JSONValue.object(["operationId": .string(operationId), "status": .string("assigning")]).jsonBytes
        )
    }

    private func operationStatus(
        _ registrationId: String,
        operationId: String,
        _ request: HTTPRequest,
        _ certificates: [X509Certificate]
    ) async -> HTTPResponse {
        if case .failure(let response) = self.attest(registrationId, request, certificates) { return response }
        guard let operation = self.operations[operationId],
            operation.attested.registrationId.lowercased() == registrationId.lowercased()
        else {
            return Self.error(404, 404_202, "the operation '\(operationId)' does not exist")
        }
        let completion = operation.completion ?? Task { await self.complete(operation) }
        self.operations[operationId]?.completion = completion
        let state = await completion.value
        let status = state.objectValue["status"] ?? .string("failed")
        return HTTPResponse(
            status: 200,
            body: JSONValue.object([
                "operationId": .string(operationId), "status": status, "registrationState": state,
            ]).jsonBytes
        )
    }

    private func statusLookup(_ registrationId: String, _ request: HTTPRequest, _ certificates: [X509Certificate])
        -> HTTPResponse
    {
        if case .failure(let response) = self.attest(registrationId, request, certificates) { return response }
        guard let result = self.results[registrationId.lowercased()] else {
            return Self.error(404, 404_203, "the registration '\(registrationId)' has not been made")
        }
        return HTTPResponse(status: 200, body: result.jsonBytes)
    }

    /// Finishes a registration: applies forced outcomes and disabled enrollments, otherwise creates the device.
    private func complete(_ operation: Operation) async -> JSONValue {
        let attested = operation.attested
        let now = Self.timestamp(Date())
        var state: [String: JSONValue] = [
            "registrationId": .string(attested.registrationId),
            "createdDateTimeUtc": .string(Self.timestamp(operation.created)),
            "lastUpdatedDateTimeUtc": .string(now),
            "etag": .string("\"\(UUID().uuidString.lowercased())\""),
        ]
        switch attested.attestation {
        case .symmetricKey:
            state["symmetricKey"] =
                attested.groupName.map { .object(["enrollmentGroupId": .string($0)]) } ?? .object([:])
        case .x509:
            var info: [String: JSONValue] = [:]
            if let certificate = attested.certificate {
                info["certificateInfo"] = .object([
                    "subjectName": .string(certificate.subject), "issuerName": .string(certificate.issuer),
                    "sha1Thumbprint": .string(certificate.sha1Thumbprint),
                    "sha256Thumbprint": .string(certificate.sha256Thumbprint),
                ])
            }
            if let group = attested.groupName { info["enrollmentGroupId"] = .string(group) }
            state["x509"] = .object(info)
        }
        let forced = await self.hub.faults.provisioningOutcomes[attested.registrationId]
        let status: String
        if forced == .failed {
            status = "failed"
            state["errorCode"] = .number(400_209)
            state["errorMessage"] = .string("Failed to assign the device to a hub (fault injection).")
        } else if forced == .disabled || !attested.enabled {
            status = "disabled"
        } else {
            status = "assigned"
            state["assignedHub"] = .string(self.configuration.hubHost)
            state["deviceId"] = .string(attested.deviceId)
            state["substatus"] = .string("initialAssignment")
            if let payload = operation.payload { state["payload"] = payload }
            var thumbprint = attested.groupName == nil ? attested.certificate?.sha256Thumbprint : nil
            if let chain = operation.issuedChain {
                state["issuedCertificateChain"] = .array(chain.map { .string($0) })
                // The hub knows the device by its new certificate from now on.
                thumbprint = (try? Base64.decode(chain[0])).map { Self.sha256Hex($0) }
            }
            let name = IdentityName(deviceId: attested.deviceId)
            await self.hub.addIdentity(
                name,
                key: attested.deviceKey,
                thumbprint: thumbprint,
                certificateAuthorities: attested.groupCAs,
                desired: attested.desired
            )
        }
        state["status"] = .string(status)
        let document = JSONValue.object(state)
        self.results[attested.registrationId.lowercased()] = document
        await self.hub.recordRegistration(
            ProvisioningRecord(
                registrationId: attested.registrationId,
                deviceId: attested.deviceId,
                enrollmentGroup: attested.groupName,
                attestation: attested.attestation,
                status: status,
                payload: operation.payload
            )
        )
        self.logger.info(
            "DPS registration finished",
            metadata: ["registrationId": "\(attested.registrationId)", "status": "\(status)"]
        )
        return document
    }

    // MARK: - Certificate issuance

    /// The chain issued for a registration's `csr` (base64 DER of a PKCS #10 request whose CN is the registration
    /// id), or the 400 DPS answers.
    private func issue(_ csr: JSONValue, for registrationId: String, apiVersion: String) -> Result<
        [String], HTTPError
    > {
        guard apiVersion == "2025-07-01-preview" else {
            return .failure(HTTPError(Self.error(400, 400_004, "a csr needs api-version 2025-07-01-preview")))
        }
        guard case .string(let text) = csr, let der = try? Base64.decode(text),
            let authority = self.certificateAuthority
        else {
            return .failure(HTTPError(Self.error(400, 400_002, "csr is not base64 DER of a PKCS #10 request")))
        }
        do {
            let (commonName, certificate) = try authority.issue(signingRequest: der)
            guard commonName.lowercased() == registrationId.lowercased() else {
                return .failure(
                    HTTPError(Self.error(400, 400_002, "the csr's CN '\(commonName)' is not the registration id"))
                )
            }
            return .success([Base64.encode(certificate.derBytes), Base64.encode(authority.identity.leaf.derBytes)])
        } catch {
            return .failure(HTTPError(Self.error(400, 400_002, "csr is not usable: \(error.message)")))
        }
    }

    /// An error answer carried as a `Result` failure.
    struct HTTPError: Error {
        let response: HTTPResponse
        init(_ response: HTTPResponse) { self.response = response }
    }

    private static func sha256Hex(_ der: [UInt8]) -> String {
        (try? X509Certificate.certificates(
            fromPEM: "-----BEGIN CERTIFICATE-----\n\(Base64.encode(der))\n-----END CERTIFICATE-----\n"
        ).first?.sha256Thumbprint) ?? ""
    }

    // MARK: - Attestation

    private enum AttestationResult {
        case success(Attested)
        case failure(HTTPResponse)
    }

    private func attest(_ registrationId: String, _ request: HTTPRequest, _ certificates: [X509Certificate])
        -> AttestationResult
    {
        let enrollments = self.configuration.provisioning
        let individual = enrollments.individualEnrollments.first {
            $0.registrationId.lowercased() == registrationId.lowercased()
        }
        if let authorization = request.headers["authorization"] {
            let token: SASToken
            do {
                token = try SASToken(parsing: authorization)
            } catch {
                return .failure(Self.error(401, 401_002, "the Authorization header is not a SAS token"))
            }
            // The REST samples sign with skn=registration; Azure's Python provisioning client (over MQTT) sends no
            // skn at all and is served by DPS. Any other key name is a hub policy's, not an enrollment's.
            guard token.keyName == "registration" || (token.keyName == nil && request.allowsUnnamedSASKey) else {
                return .failure(Self.error(401, 401_002, "a DPS SAS token must carry skn=registration"))
            }
            let resource = SASResource.registration(idScope: enrollments.idScope, registrationId: registrationId)
            if let individual, let key = self.individualKeys[registrationId.lowercased()] {
                do {
                    try token.validate(with: key, now: UnixTime.now(), expectedResource: resource)
                } catch {
                    return .failure(Self.error(401, 401_002, "SAS attestation failed: \(error.message)"))
                }
                return .success(
                    Attested(
                        registrationId: registrationId,
                        deviceId: individual.deviceId ?? registrationId,
                        groupName: nil,
                        attestation: .symmetricKey,
                        deviceKey: key,
                        certificate: nil,
                        groupCAs: [],
                        enabled: individual.enabled ?? true,
                        desired: individual.initialDesiredProperties
                    )
                )
            }
            var lastFailure = "no enrollment for '\(registrationId)' accepts this SAS token"
            for (name, groupKey) in self.groupKeys {
                guard let derived = try? groupKey.derivedKey(forRegistrationId: registrationId) else { continue }
                do {
                    try token.validate(with: derived, now: UnixTime.now(), expectedResource: resource)
                } catch {
                    if error.code != .sasSignatureMismatch { lastFailure = "SAS attestation failed: \(error.message)" }
                    continue
                }
                let group = enrollments.enrollmentGroups.first { $0.name == name }
                return .success(
                    Attested(
                        registrationId: registrationId,
                        deviceId: registrationId,
                        groupName: name,
                        attestation: .symmetricKey,
                        deviceKey: derived,
                        certificate: nil,
                        groupCAs: [],
                        enabled: group?.enabled ?? true,
                        desired: group?.initialDesiredProperties
                    )
                )
            }
            return .failure(Self.error(401, 401_002, lastFailure))
        }
        guard let leaf = certificates.first else {
            return .failure(Self.error(401, 401_002, "send a SAS Authorization header or a client certificate"))
        }
        guard leaf.commonName == registrationId else {
            return .failure(
                Self.error(401, 401_002, "the certificate's CN '\(leaf.commonName ?? "")' is not the registration id")
            )
        }
        if let individual, let thumbprint = individual.certificateThumbprint?.uppercased(),
            thumbprint == leaf.sha1Thumbprint || thumbprint == leaf.sha256Thumbprint
        {
            return .success(
                Attested(
                    registrationId: registrationId,
                    deviceId: individual.deviceId ?? registrationId,
                    groupName: nil,
                    attestation: .x509,
                    deviceKey: nil,
                    certificate: leaf,
                    groupCAs: [],
                    enabled: individual.enabled ?? true,
                    desired: individual.initialDesiredProperties
                )
            )
        }
        for (name, authorities) in self.groupCAs {
            guard (try? leaf.verify(intermediates: Array(certificates.dropFirst()), anchors: authorities)) != nil else {
                continue
            }
            let group = enrollments.enrollmentGroups.first { $0.name == name }
            return .success(
                Attested(
                    registrationId: registrationId,
                    deviceId: registrationId,
                    groupName: name,
                    attestation: .x509,
                    deviceKey: nil,
                    certificate: leaf,
                    groupCAs: authorities,
                    enabled: group?.enabled ?? true,
                    desired: group?.initialDesiredProperties
                )
            )
        }
        return .failure(Self.error(401, 401_002, "Invalid certificate."))
    }

    // MARK: - Shapes

    /// `ProvisioningServiceErrorDetails`.
    static func error(_ status: Int, _ code: Int, _ message: String) -> HTTPResponse {
        HTTPResponse(
            status: status,
            headers: [("x-ms-error-code", String(code))],
            body: JSONValue.object([
                "errorCode": .number(JSONNumber(code)),
                "trackingId": .string(UUID().uuidString.lowercased()),
                "message": .string(message),
                "timestampUtc": .string(Self.timestamp(Date())),
            ]).jsonBytes
        )
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(
            .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)
        )
    }
}
