public import AzureIoTCore
import AzureIoTProxy
public import Foundation
import HubAMQP
public import Logging
public import Tracing

/// Registers a device with the Azure IoT Hub Device Provisioning Service, as one `try await`: over REST the way the
/// write-ups do it with curl (`PUT …/register`, then `GET …/operations/{id}` while the status is `assigning`,
/// waiting the `Retry-After` the service asks for), or the same exchange over MQTT (`$dps/registrations/…` topics),
/// directly or in a WebSocket (``Configuration/transport``).
public struct ProvisioningClient: Sendable {
    /// How the registration travels to DPS.
    public enum Transport: String, Sendable, Hashable, CaseIterable {
        /// HTTPS REST on port 443 (the default), through libcurl.
        case https
        /// MQTT 3.1.1 over TLS, port 8883 (`$dps/registrations/…` topics), as the Python device SDK provisions.
        case mqtt
        /// MQTT in a WebSocket over TLS, port 443 (`/$iothub/websocket`).
        case mqttWebSockets = "mqtt-ws"
        /// AMQP 1.0 over TLS, port 5671 (`{idScope}/registrations/{registrationId}` links), as Azure's C and Node
        /// provisioning clients speak it.
        case amqp
        /// AMQP in a WebSocket over TLS, port 443 (`/$iothub/websocket`, sub-protocol `AMQPWSB10`).
        case amqpWebSockets = "amqp-ws"

        /// DPS's port for the transport.
        public var defaultPort: Int {
            switch self {
            case .mqtt: 8883
            case .amqp: 5671
            case .https, .mqttWebSockets, .amqpWebSockets: 443
            }
        }
    }

    /// How the device proves who it is.
    public enum Attestation: Sendable {
        /// Individual enrollment: the device's own key.
        case symmetricKey(SymmetricKey)
        /// Group enrollment: the group key; the device key is derived from it and the registration id.
        case groupSymmetricKey(SymmetricKey)
        /// X.509 (individual or group): the leaf and chain go out as the TLS client certificate.
        case x509(X509Identity)
    }

    /// Everything a registration needs.
    public struct Configuration: Sendable {
        /// The DPS host, optionally with `:port` (default the global endpoint).
        public var endpoint: String
        /// The ID scope.
        public var idScope: String
        /// The registration id.
        public var registrationId: String
        /// The attestation.
        public var attestation: Attestation
        /// The `api-version` (default `2021-10-01`; `2019-03-31` is what most SDKs send).
        public var apiVersion: String
        /// Trust roots for the DPS endpoint (default: the system store).
        public var trustRoots: TLSConfiguration.TrustRoots
        /// The `User-Agent` sent.
        public var userAgent: String
        /// The wait between polls when the service sends no `Retry-After` (doubles with jitter, up to
        /// ``maximumPollInterval``).
        public var defaultPollInterval: Duration
        /// The longest wait between polls chosen by the client (a service `Retry-After` is never shortened).
        public var maximumPollInterval: Duration
        /// How many times a 5xx answer is retried before it is surfaced.
        public var serverErrorRetries: Int
        /// How a request that got no answer (connection refused or reset, failed handshake) is retried: the same
        /// `RetryPolicy` the hub clients use for reconnects (waits with jitter, growing to its maximum), up to its
        /// `maximumAttempts` retries, then ``ProvisioningError/Code/transportFailure``. Certificate errors are never
        /// retried. By default: ``defaultPollInterval`` doubling to ``maximumPollInterval``, 3 retries.
        public var retryPolicy: RetryPolicy
        /// How many times a request that got no answer is retried (the retry policy's `maximumAttempts`).
        public var transportRetries: Int {
            get { self.retryPolicy.maximumAttempts ?? Int.max }
            set { self.retryPolicy.maximumAttempts = newValue }
        }
        /// SAS token lifetime in seconds.
        public var tokenTimeToLive: UInt64
        /// A proxy for the DPS requests (`http://user:pass@host:port`, `socks5h://…`); `nil` (the default) follows
        /// `https_proxy`/`no_proxy` as libcurl does. The URL's credentials are a secret: never logged or shown.
        public var proxy: String?
        /// How the registration travels: REST (the default), MQTT, or MQTT in a WebSocket. The ``endpoint``'s port,
        /// when it names one, wins over the transport's. The status lookup (``registrationStatus(timeout:)``) is
        /// REST only.
        public var transport: Transport = .https
        /// A certificate signing request to send with the registration (its CN must be the registration id): DPS
        /// issues a certificate for it (api-version `2025-07-01-preview`, used when ``apiVersion`` is left at its
        /// default), and the result's ``ProvisioningResult/identity`` is the new key with the issued chain, ready to
        /// connect with.
        public var certificateSigningRequest: CertificateSigningRequest?
        /// The IoT Plug and Play model id the device implements, sent in the registration payload as `modelId` (as
        /// Azure's SDKs do), beside the fields of a custom payload object.
        public var modelId: String?

        /// A configuration for one device.
        public init(
            endpoint: String = RegistrationRoute.globalEndpoint,
            idScope: String,
            registrationId: String,
            attestation: Attestation,
            apiVersion: String = RegistrationRoute.defaultAPIVersion,
            trustRoots: TLSConfiguration.TrustRoots = .system,
            userAgent: String = ProvisioningClient.userAgent,
            defaultPollInterval: Duration = .seconds(2),
            maximumPollInterval: Duration = .seconds(60),
            serverErrorRetries: Int = 3,
            transportRetries: Int = 3,
            retryPolicy: RetryPolicy? = nil,
            tokenTimeToLive: UInt64 = 3600
        ) {
            self.endpoint = endpoint
            self.idScope = idScope
            self.registrationId = registrationId
            self.attestation = attestation
            self.apiVersion = apiVersion
            self.trustRoots = trustRoots
            self.userAgent = userAgent
            self.defaultPollInterval = defaultPollInterval
            self.maximumPollInterval = maximumPollInterval
            self.serverErrorRetries = serverErrorRetries
            self.retryPolicy =
                retryPolicy
                ?? RetryPolicy(
                    initialDelay: defaultPollInterval,
                    maximumDelay: maximumPollInterval,
                    jitter: 0.2,
                    maximumAttempts: transportRetries
                )
            self.tokenTimeToLive = tokenTimeToLive
        }
    }

    /// The DPS api-version that issues certificates for signing requests.
    public static let certificateIssuanceAPIVersion = "2025-07-01-preview"

    /// The `User-Agent` this SDK sends.
    public static let userAgent = "\(SDKVersion.clientName) (dps-rest; linux)"

    /// The configuration.
    public let configuration: Configuration
    private let logger: Logger
    private let tracer: (any Tracer)?
    private let route: RegistrationRoute
    private let credential: SymmetricKeyCredential?

    /// A client for one device. Throws ``ProvisioningError/Code/invalidConfiguration`` when the registration id is
    /// empty or, for X.509, differs from the leaf certificate's CN; nothing is sent in that case.
    ///
    /// Each registration is an `azure_iot.provision` client span on `tracer` (by default the process's bootstrapped
    /// `InstrumentationSystem`, a no-op until a backend is bootstrapped), with the registration id and, once
    /// assigned, the hub and device id as attributes; a failure is recorded on it.
    public init(
        configuration: Configuration,
        logger: Logger = TLSConnection.disabledLogger,
        tracer: (any Tracer)? = nil
    ) throws(ProvisioningError) {
        guard !configuration.idScope.isEmpty, !configuration.registrationId.isEmpty else {
            throw ProvisioningError(.invalidConfiguration, "the ID scope and the registration id must not be empty")
        }
        var configuration = configuration
        if let request = configuration.certificateSigningRequest {
            guard request.commonName == configuration.registrationId else {
                throw ProvisioningError(
                    .invalidConfiguration,
                    "the certificate request's CN '\(request.commonName)' must be the registration id '\(configuration.registrationId)'"
                )
            }
            if configuration.apiVersion == RegistrationRoute.defaultAPIVersion {
                configuration.apiVersion = Self.certificateIssuanceAPIVersion
            }
        }
        self.configuration = configuration
        self.logger = logger
        self.tracer = tracer
        self.route = RegistrationRoute(
            idScope: configuration.idScope,
            registrationId: configuration.registrationId,
            apiVersion: configuration.apiVersion
        )
        switch configuration.attestation {
        case .symmetricKey(let key):
            self.credential = SymmetricKeyCredential(
                key: key,
                keyName: "registration",
                timeToLive: configuration.tokenTimeToLive
            )
        case .groupSymmetricKey(let groupKey):
            do {
                let key = try groupKey.derivedKey(forRegistrationId: configuration.registrationId)
                self.credential = SymmetricKeyCredential(
                    key: key,
                    keyName: "registration",
                    timeToLive: configuration.tokenTimeToLive
                )
            } catch {
                throw ProvisioningError(.invalidConfiguration, "the device key could not be derived: \(error.message)")
            }
        case .x509(let identity):
            guard identity.commonName == configuration.registrationId else {
                throw ProvisioningError(
                    .invalidConfiguration,
                    "the registration id '\(configuration.registrationId)' must equal the certificate's CN '\(identity.commonName ?? "")'"
                )
            }
            self.credential = nil
        }
    }

    // MARK: - Registering

    /// Registers the device and waits for the outcome, calling `onStatus` each time the status changes.
    ///
    /// Returns when the status is `assigned`; throws ``ProvisioningError`` for `failed` (with the service's error
    /// code), `disabled`, service errors, malformed answers and `timeout`; throws `CancellationError` when the task
    /// is cancelled, even mid-poll.
    public func register(
        payload: (any Encodable & Sendable)? = nil,
        timeout: Duration = .seconds(120),
        onStatus: (@Sendable (RegistrationStatus) -> Void)? = nil
    ) async throws -> ProvisioningResult {
        try await self.register(
            payloadValue: try payload.map { try Self.jsonValue(of: $0) },
            timeout: timeout,
            onStatus: onStatus
        )
    }

    /// Registers with a payload given as JSON text (for tools that pass it through). Throws
    /// ``ProvisioningError/Code/invalidConfiguration`` if `payloadJSON` is not JSON; otherwise as
    /// ``register(payload:timeout:onStatus:)``.
    public func register(
        payloadJSON: Data,
        timeout: Duration = .seconds(120),
        onStatus: (@Sendable (RegistrationStatus) -> Void)? = nil
    ) async throws -> ProvisioningResult {
        let value: JSONValue
        do {
            value = try JSONValue(parsing: payloadJSON)
        } catch {
            throw ProvisioningError(
                .invalidConfiguration,
                "the payload is not valid JSON: \(error.message)",
                underlying: error
            )
        }
        return try await self.register(payloadValue: value, timeout: timeout, onStatus: onStatus)
    }

    private func register(
        payloadValue: JSONValue?,
        timeout: Duration,
        onStatus: (@Sendable (RegistrationStatus) -> Void)?
    ) async throws -> ProvisioningResult {
        let span = (self.tracer ?? InstrumentationSystem.tracer).startSpan("azure_iot.provision", ofKind: .client)
        span.attributes["azure_iot.registration_id"] = self.configuration.registrationId
        defer { span.end() }
        do {
            let result = try await self.registerUntraced(
                payloadValue: payloadValue,
                timeout: timeout,
                onStatus: onStatus
            )
            span.attributes["azure_iot.assigned_hub"] = result.assignedHub
            span.attributes["azure_iot.device_id"] = result.deviceId
            return result
        } catch {
            span.recordError(error)
            throw error
        }
    }

    private func registerUntraced(
        payloadValue: JSONValue?,
        timeout: Duration,
        onStatus: (@Sendable (RegistrationStatus) -> Void)?
    ) async throws -> ProvisioningResult {
        let deadline = ContinuousClock.now + timeout
        var body: [String: JSONValue] = ["registrationId": .string(self.configuration.registrationId)]
        if let payloadValue { body["payload"] = payloadValue }
        if let modelId = self.configuration.modelId {
            var payload: [String: JSONValue] = [:]
            switch payloadValue {
            case .object(let members)?: payload = members
            case nil, .null?: break
            default:
                throw ProvisioningError(
                    .invalidConfiguration,
                    "the model id goes into the payload object, and the payload given is not a JSON object"
                )
            }
            payload["modelId"] = .string(modelId)
            body["payload"] = .object(payload)
        }
        if let request = self.configuration.certificateSigningRequest { body["csr"] = .string(request.base64) }
        let bodyBytes = JSONValue.object(body).jsonBytes

        var lastStatus: RegistrationStatus?
        func report(_ status: RegistrationStatus?) {
            guard let status, status != lastStatus else { return }
            lastStatus = status
            self.logger.debug(
                "registration status",
                metadata: ["registrationId": "\(self.configuration.registrationId)", "status": "\(status)"]
            )
            onStatus?(status)
        }

        let mqtt = try self.makeMQTTConnection()
        do {
            let result = try await self.registerLoop(bodyBytes, deadline: deadline, mqtt: mqtt, report: report)
            await mqtt?.finish()
            return result
        } catch {
            await mqtt?.finish()
            throw error
        }
    }

    private func registerLoop(
        _ bodyBytes: [UInt8],
        deadline: ContinuousClock.Instant,
        mqtt: (any DPSMessageConnection)?,
        report: (RegistrationStatus?) -> Void
    ) async throws -> ProvisioningResult {
        var (operation, retryAfter) = try await self.send(.register(body: bodyBytes), deadline: deadline, mqtt: mqtt)
        var pollDelay = self.configuration.defaultPollInterval
        while true {
            report(operation.status ?? operation.registrationState?.status)
            let state = operation.registrationState
            switch operation.status ?? state?.status {
            case .assigned?:
                guard let state, state.assignedHub != nil, state.deviceId != nil else {
                    throw ProvisioningError(
                        .malformedResponse,
                        "the service said 'assigned' without a hub and device id"
                    )
                }
                if let request = self.configuration.certificateSigningRequest {
                    guard let chain = state.issuedCertificateChain, !chain.isEmpty else {
                        throw ProvisioningError(
                            .malformedResponse,
                            "the service assigned the device without the certificate the request asked for"
                        )
                    }
                    let issued: X509Identity
                    do {
                        issued = try request.identity(issuedChain: chain)
                    } catch {
                        throw ProvisioningError(
                            .malformedResponse,
                            "the issued certificate chain is not usable: \(error.message)",
                            underlying: error
                        )
                    }
                    // The device connects with its new certificate.
                    return ProvisioningResult(registration: state, credential: nil, identity: issued)
                }
                return ProvisioningResult(
                    registration: state,
                    credential: self.hubCredential(),
                    identity: self.identity
                )
            case .failed?:
                throw ProvisioningError(
                    .registrationFailed,
                    "the registration failed: \(state?.errorMessage ?? "no message")",
                    errorCode: state?.errorCode
                )
            case .disabled?:
                throw ProvisioningError(
                    .registrationDisabled,
                    "the enrollment for '\(self.configuration.registrationId)' is disabled",
                    errorCode: state?.errorCode
                )
            default:
                guard let operationId = operation.operationId, !operationId.isEmpty else {
                    throw ProvisioningError(
                        .malformedResponse,
                        "the service answered '\(operation.status?.rawValue ?? "no status")' without an operationId"
                    )
                }
                let wait = retryAfter ?? Self.jittered(pollDelay)
                if retryAfter == nil { pollDelay = min(pollDelay * 2, self.configuration.maximumPollInterval) }
                try await Self.sleep(wait, until: deadline)
                (operation, retryAfter) = try await self.send(
                    .poll(operationId: operationId),
                    deadline: deadline,
                    mqtt: mqtt
                )
            }
        }
    }

    /// Looks up the device's current registration (`POST /{scope}/registrations/{id}`).
    public func registrationStatus(timeout: Duration = .seconds(30)) async throws -> DeviceRegistrationResult {
        let deadline = ContinuousClock.now + timeout
        let body = Array(try JSONEncoder().encode(["registrationId": self.configuration.registrationId]))
        let response = try await self.exchange(.status(body: body), deadline: deadline, mqtt: nil)
        do {
            return try JSONDecoder().decode(DeviceRegistrationResult.self, from: Data(response.body))
        } catch {
            throw ProvisioningError(
                .malformedResponse,
                "the registration status is not valid JSON: \(error)",
                httpStatus: response.status
            )
        }
    }

    // MARK: - One request, with throttling and retries

    /// A request of the registration, whatever carries it.
    private enum Operation {
        case register(body: [UInt8])
        case poll(operationId: String)
        case status(body: [UInt8])
    }

    private func send(_ operation: Operation, deadline: ContinuousClock.Instant, mqtt: (any DPSMessageConnection)?)
        async throws -> (RegistrationOperationStatus, Duration?)
    {
        let response = try await self.exchange(operation, deadline: deadline, mqtt: mqtt)
        do {
            var operation = try JSONDecoder().decode(RegistrationOperationStatus.self, from: Data(response.body))
            // The payload is carried through as the exact JSON DPS sent (no Double round trip for its numbers).
            if operation.registrationState?.payloadJSON != nil,
                let payload = try? JSONValue(parsing: response.body)["registrationState"]?["payload"]
            {
                operation.registrationState?.payloadJSON = Data(payload.jsonBytes)
            }
            return (operation, Self.retryAfter(response))
        } catch {
            throw ProvisioningError(
                .malformedResponse,
                "the service's answer is not the JSON DPS sends (HTTP \(response.status))",
                httpStatus: response.status
            )
        }
    }

    /// Sends a request until it gets a non-throttled, non-5xx answer, and turns error statuses into errors.
    private func exchange(_ operation: Operation, deadline: ContinuousClock.Instant, mqtt: (any DPSMessageConnection)?)
        async throws -> HTTPResponse
    {
        var serverErrors = 0
        var transportBackoff = RetryPolicy.Backoff(policy: self.configuration.retryPolicy)
        var backoff = self.configuration.defaultPollInterval
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                throw ProvisioningError(.timedOut, "the registration did not finish in time")
            }
            let response: HTTPResponse
            do {
                response = try await self.perform(operation, timeout: remaining, mqtt: mqtt)
            } catch let error as AzureIoTError where Self.transientCodes.contains(error.code) {
                guard
                    case .retry(let wait) = transportBackoff.attemptFailed(
                        .transient,
                        reason: error.message,
                        randomUnit: Double.random(in: 0..<1)
                    )
                else {
                    throw Self.transportError(error, endpoint: self.configuration.endpoint)
                }
                self.logger.debug(
                    "no answer from DPS, retrying",
                    metadata: ["error": "\(error.code)", "wait": "\(wait)"]
                )
                try await Self.sleep(wait, until: deadline)
                continue
            } catch let error as AzureIoTError where error.code == .timedOut {
                throw ProvisioningError(.timedOut, "the registration did not finish in time")
            } catch let error as AzureIoTError {
                throw Self.transportError(error, endpoint: self.configuration.endpoint)
            }
            // A document nested deeper than DPS ever sends is refused unread, before any decoder walks it.
            guard JSONNesting.depth(of: response.body, stoppingAbove: Self.maximumJSONDepth) <= Self.maximumJSONDepth
            else {
                throw ProvisioningError(
                    .malformedResponse,
                    "the response nests deeper than \(Self.maximumJSONDepth) levels",
                    httpStatus: response.status
                )
            }
            switch response.status {
            case 200..<300:
                return response
            case 429:
                let wait = Self.retryAfter(response) ?? Self.jittered(backoff)
                backoff = min(backoff * 2, self.configuration.maximumPollInterval)
                self.logger.debug("throttled by DPS", metadata: ["wait": "\(wait)"])
                guard ContinuousClock.now + wait < deadline else {
                    throw Self.serviceError(
                        response,
                        code: .throttled,
                        "the service kept throttling (429) until the timeout"
                    )
                }
                try await Self.sleep(wait, until: deadline)
            case 500..<600 where serverErrors < self.configuration.serverErrorRetries:
                serverErrors += 1
                let wait = Self.retryAfter(response) ?? Self.jittered(backoff)
                backoff = min(backoff * 2, self.configuration.maximumPollInterval)
                try await Self.sleep(wait, until: deadline)
            case 401, 403:
                throw Self.serviceError(response, code: .unauthorized, "the service refused the credentials")
            case 404:
                throw Self.serviceError(
                    response,
                    code: .notFound,
                    "the service does not know this ID scope, registration or operation"
                )
            default:
                throw Self.serviceError(response, code: .serviceError, "the service answered HTTP \(response.status)")
            }
        }
    }

    /// A TLS or network failure as a ``ProvisioningError``: certificate problems get their own codes, the rest is
    /// ``ProvisioningError/Code/transportFailure``; the `AzureIoTError` stays as the underlying cause.
    static func transportError(_ error: AzureIoTError, endpoint: String) -> ProvisioningError {
        switch error.code {
        case .certificateUntrusted, .hostnameMismatch, .certificateExpired:
            return ProvisioningError(
                .serverCertificateUntrusted,
                "the certificate of \(endpoint) was not accepted: \(error.message)",
                underlying: error
            )
        case .clientCertificateRejected, .invalidCertificate, .invalidPrivateKey, .privateKeyMismatch:
            return ProvisioningError(
                .clientCertificateRejected,
                "the device certificate was not accepted: \(error.message)",
                underlying: error
            )
        default:
            return ProvisioningError(.transportFailure, "no answer from \(endpoint): \(error)", underlying: error)
        }
    }

    /// Transport failures worth another try: the server may be restarting or overloaded.
    private static let transientCodes: Set<AzureIoTError.Code> = [
        .connectionFailed, .connectionClosed, .tlsHandshakeFailed, .ioFailure,
    ]

    /// Performs one request; transport failures come back as ``AzureIoTError`` for ``exchange`` to classify.
    private func perform(_ operation: Operation, timeout: Duration, mqtt: (any DPSMessageConnection)?) async throws
        -> HTTPResponse
    {
        let method: String
        let path: String
        let body: [UInt8]?
        switch operation {
        case .register(let registration):
            if let mqtt { return try await mqtt.exchange(.register(body: registration), deadline: .now + timeout) }
            (method, path, body) = ("PUT", self.route.registerPath, registration)
        case .poll(let operationId):
            if let mqtt { return try await mqtt.exchange(.poll(operationId: operationId), deadline: .now + timeout) }
            (method, path, body) = ("GET", self.route.operationPath(operationId: operationId), nil)
        case .status(let lookup):
            (method, path, body) = ("POST", self.route.statusPath, lookup)
        }
        var headers: [(String, String)] = [
            ("Accept", "application/json"),
            ("Content-Type", "application/json"),
            ("Content-Encoding", "utf-8"),
        ]
        if let credential = self.credential {
            let issued = try credential.issueToken(for: self.route.sasResource)
            headers.append(("Authorization", issued.token.secretValue))
        }
        let request = HTTPRequest(
            method: method,
            url: "https://\(self.configuration.endpoint)\(path)",
            headers: headers,
            body: body
        )
        var tls = TLSConfiguration(trustRoots: self.configuration.trustRoots)
        if case .x509(let identity) = self.configuration.attestation { tls.clientIdentity = identity }
        self.logger.trace("DPS request", metadata: ["method": "\(method)", "path": "\(path)"])
        return try await CurlEngine.shared.perform(
            request,
            tls: tls,
            timeout: timeout,
            userAgent: self.configuration.userAgent,
            proxy: self.configuration.proxy
        )
    }

    // MARK: - MQTT

    /// The MQTT connection of one registration, or `nil` over REST.
    private func makeMQTTConnection() throws -> (any DPSMessageConnection)? {
        let transport = self.configuration.transport
        guard transport != .https else { return nil }
        let (host, port) = Self.hostAndPort(self.configuration.endpoint, defaultPort: transport.defaultPort)
        var tls = TLSConfiguration(trustRoots: self.configuration.trustRoots)
        if case .x509(let identity) = self.configuration.attestation { tls.clientIdentity = identity }
        if transport == .mqttWebSockets { tls.webSocket = .mqtt }
        if transport == .amqpWebSockets { tls.webSocket = .amqp }
        // The same proxy as REST: the configured one, else the environment's as libcurl reads it.
        do {
            if let proxy = self.configuration.proxy {
                tls.connectionOpener = try ProxyConnectionOpener(url: proxy)
            } else if ProxyConnectionOpener.environmentNamesProxy {
                tls.connectionOpener = ProxyConnectionOpener.environment
            }
        } catch {
            throw ProvisioningError(
                .invalidConfiguration,
                "the proxy URL is not usable: \(error.message)",
                underlying: error
            )
        }
        let credential = self.credential
        let resource = self.route.sasResource
        if transport == .amqp || transport == .amqpWebSockets {
            var token: (@Sendable () async throws -> String)?
            if let credential {
                token = { @Sendable () async throws -> String in
                    try await credential.token(for: resource, now: UnixTime.now()).token.secretValue
                }
            }
            return DPSAMQPExchange(
                connection: DPSAMQPConnection(
                    settings: .init(
                        host: host,
                        port: port,
                        tls: tls,
                        idScope: self.configuration.idScope,
                        registrationId: self.configuration.registrationId,
                        apiVersion: self.configuration.apiVersion,
                        userAgent: self.configuration.userAgent,
                        token: token
                    )
                )
            )
        }
        return DPSMQTTConnection(
            host: host,
            port: port,
            tls: tls,
            protocol: DPSMQTTProtocol(
                idScope: self.configuration.idScope,
                registrationId: self.configuration.registrationId,
                apiVersion: self.configuration.apiVersion,
                userAgent: self.configuration.userAgent
            ),
            logger: self.logger,
            password: { () throws -> [UInt8]? in
                try credential.map { Array(try $0.issueToken(for: resource).token.secretValue.utf8) }
            }
        )
    }

    /// `host[:port]` (an IPv6 literal in brackets) split, with `defaultPort` when none is given.
    static func hostAndPort(_ endpoint: String, defaultPort: Int) -> (String, Int) {
        if endpoint.hasPrefix("["), let close = endpoint.firstIndex(of: "]") {
            let host = String(endpoint[endpoint.index(after: endpoint.startIndex)..<close])
            let rest = endpoint[endpoint.index(after: close)...]
            if rest.hasPrefix(":"), let port = Int(rest.dropFirst()), (1...65535).contains(port) { return (host, port) }
            return (host, defaultPort)
        }
        let parts = endpoint.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port) { return (String(parts[0]), port) }
        return (endpoint, defaultPort)
    }

    // MARK: - Helpers

    private var identity: X509Identity? {
        if case .x509(let identity) = self.configuration.attestation { return identity }
        return nil
    }

    private func hubCredential() -> SymmetricKeyCredential? {
        self.credential.map { SymmetricKeyCredential(key: $0.key, timeToLive: $0.timeToLive) }
    }

    private static func serviceError(_ response: HTTPResponse, code: ProvisioningError.Code, _ summary: String)
        -> ProvisioningError
    {
        let details = try? JSONDecoder().decode(ServiceErrorDetails.self, from: Data(response.body))
        let message = details?.message.map { "\(summary): \($0)" } ?? summary
        return ProvisioningError(
            code,
            message,
            httpStatus: response.status,
            errorCode: details?.errorCode,
            trackingId: details?.trackingId ?? response.header("x-ms-request-id")
        )
    }

    /// The shortest and longest wait a `Retry-After` can ask for: a server asking for less is waited on for 100 ms
    /// (no tight polling loop), one asking for more (`1e300`, `inf`) for 10 minutes, and the request's own deadline
    /// still applies.
    static let retryAfterRange: ClosedRange<Double> = 0.1...600

    /// The deepest JSON nesting accepted in a response (DPS documents and custom payloads stay far below it).
    static let maximumJSONDepth = 64

    /// The `Retry-After` header as a duration (seconds, as DPS sends them), within ``retryAfterRange``; `nil` when
    /// absent or not a number (an HTTP date, `nan`), so the client's own back-off applies.
    static func retryAfter(_ response: HTTPResponse) -> Duration? {
        guard let text = response.header("retry-after"),
            let seconds = Double(text.trimmingCharacters(in: .whitespaces)), !seconds.isNaN, seconds >= 0
        else { return nil }
        let clamped = min(max(seconds, Self.retryAfterRange.lowerBound), Self.retryAfterRange.upperBound)
        return .milliseconds(Int64(clamped * 1000))
    }

    /// `base` with up to ±20 % jitter.
    static func jittered(_ base: Duration) -> Duration {
        base * Double.random(in: 0.8...1.2)
    }

    private static func sleep(_ duration: Duration, until deadline: ContinuousClock.Instant) async throws {
        guard ContinuousClock.now + duration < deadline else {
            throw ProvisioningError(.timedOut, "the registration did not finish in time")
        }
        try await Task.sleep(for: duration)
    }

    private static func jsonValue(of payload: any Encodable) throws -> JSONValue {
        if let value = payload as? JSONValue { return value }
        return try JSONValue(parsing: JSONEncoder().encode(payload))
    }
}

/// A successful registration: what DPS said, and what a hub client needs next (a `DeviceAssignment`).
public struct ProvisioningResult: DeviceAssignment {
    /// The registration state DPS returned.
    public let registration: DeviceRegistrationResult
    /// The hub credential for symmetric-key attestation (the same device key, no `skn`); `nil` for X.509 and for
    /// an issued certificate.
    public let credential: SymmetricKeyCredential?
    /// The X.509 identity: the attesting certificate, or the certificate DPS issued for the configuration's
    /// certificate signing request (with the request's key).
    public let identity: X509Identity?

    /// The assigned IoT Hub host.
    public var assignedHub: String { self.registration.assignedHub ?? "" }
    /// The device id in that hub.
    public var deviceId: String { self.registration.deviceId ?? "" }

    /// A connection string for the assigned hub (symmetric key only; contains the key).
    public var connectionString: ConnectionString? {
        guard let credential else { return nil }
        return ConnectionString(hostName: self.assignedHub, deviceId: self.deviceId, sharedAccessKey: credential.key)
    }
}

extension ProvisioningClient.Configuration: CustomStringConvertible, CustomDebugStringConvertible {
    /// A readable summary that never contains secrets: no key, and the proxy without its credentials.
    public var description: String {
        let attestation: String
        switch self.attestation {
        case .symmetricKey: attestation = "symmetric key"
        case .groupSymmetricKey: attestation = "group symmetric key"
        case .x509(let identity): attestation = "X.509 \(identity.thumbprint)"
        }
        var proxy = ""
        if let url = self.proxy {
            let host = URLComponents(string: url).map {
                "\($0.scheme ?? "?")://\($0.host ?? "?")" + ($0.port.map { ":\($0)" } ?? "")
            }
            proxy = ", proxy: \(host ?? "<unparsable>")"
        }
        return "ProvisioningClient.Configuration(\(self.endpoint), scope \(self.idScope), registration "
            + "\(self.registrationId), \(attestation)\(proxy))"
    }

    /// The same as `description` (secrets redacted).
    public var debugDescription: String { self.description }
}
