public import AzureIoTCore
public import DPSClient
public import Logging
public import Tracing

extension DeviceClientConfiguration {
    /// A configuration for the device the Device Provisioning Service assigned: its hub, its device id, and its
    /// credential (the device key for symmetric-key attestation, the certificate for X.509). Throws
    /// ``DeviceClientError/Code/invalidArgument`` when the result names no hub or device, or carries no credential.
    public init(
        provisioned result: ProvisioningResult,
        transport: Transport = .mqtt,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        port: Int? = nil
    ) throws(DeviceClientError) {
        guard !result.assignedHub.isEmpty, !result.deviceId.isEmpty else {
            throw DeviceClientError(.invalidArgument, "the provisioning result names no assigned hub or device id")
        }
        let authentication: Authentication
        if let credential = result.credential {
            authentication = .sas(credential)
        } else if let identity = result.identity {
            authentication = .x509(identity)
        } else {
            throw DeviceClientError(.invalidArgument, "the provisioning result carries no credential")
        }
        self.init(
            transport: transport,
            hubHost: result.assignedHub,
            deviceId: result.deviceId,
            authentication: authentication,
            port: port,
            trustRoots: trustRoots
        )
    }
}

extension DeviceClient {
    /// Registers the device with the Device Provisioning Service (polling until it is assigned, within `timeout`)
    /// inside an `azure_iot.provision` client span, and returns the assignment for
    /// ``DeviceClientConfiguration/init(provisioned:transport:trustRoots:port:)``.
    ///
    /// Throws ``DeviceClientError`` with the `ProvisioningError` as its underlying error: `invalidArgument` for a
    /// configuration DPS cannot use, `authenticationFailed` for refused credentials, `connectionFailed` when DPS
    /// cannot be reached or its certificate is not trusted, `timedOut`, `provisioningFailed` when DPS answered but
    /// did not assign the device, and `protocolViolation` for answers that are not DPS's.
    public static func provision(
        _ configuration: ProvisioningClient.Configuration,
        payload: (any Encodable & Sendable)? = nil,
        timeout: Duration = .seconds(120),
        logger: Logger = TLSConnection.disabledLogger,
        tracer: (any Tracer)? = nil
    ) async throws -> ProvisioningResult {
        let span = (tracer ?? InstrumentationSystem.tracer).startSpan("azure_iot.provision", ofKind: .client)
        span.attributes["azure_iot.registration_id"] = configuration.registrationId
        defer { span.end() }
        do {
            let client = try ProvisioningClient(configuration: configuration, logger: logger)
            let result = try await client.register(payload: payload, timeout: timeout)
            span.attributes["azure_iot.assigned_hub"] = result.assignedHub
            span.attributes["azure_iot.device_id"] = result.deviceId
            return result
        } catch let error as ProvisioningError {
            let mapped = DeviceClientError.mapping(provisioning: error)
            span.recordError(mapped)
            throw mapped
        } catch {
            span.recordError(error)
            throw error
        }
    }
}

extension DeviceClientError {
    /// The neutral error for a provisioning failure, keeping it as the underlying error.
    static func mapping(provisioning error: ProvisioningError) -> DeviceClientError {
        let code: Code
        switch error.code {
        case .invalidConfiguration: code = .invalidArgument
        case .unauthorized, .clientCertificateRejected: code = .authenticationFailed
        case .transportFailure, .serverCertificateUntrusted: code = .connectionFailed
        case .timedOut: code = .timedOut
        case .malformedResponse: code = .protocolViolation
        default: code = .provisioningFailed
        }
        return DeviceClientError(code, error.message, status: error.httpStatus, underlying: error)
    }
}
