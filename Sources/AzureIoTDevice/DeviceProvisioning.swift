extension DeviceClientConfiguration {
    /// A configuration for the device a provisioning service assigned, e.g. DPSClient's `ProvisioningResult`: its hub,
    /// its device id, and its credential (the device key for symmetric-key attestation, the certificate for X.509).
    /// Throws ``DeviceClientError/Code/invalidArgument`` when the assignment names no hub or device, or carries no
    /// credential.
    public init(
        provisioned assignment: some DeviceAssignment,
        transport: Transport = .mqtt,
        trustRoots: TLSConfiguration.TrustRoots = .system,
        port: Int? = nil
    ) throws(DeviceClientError) {
        guard !assignment.assignedHub.isEmpty, !assignment.deviceId.isEmpty else {
            throw DeviceClientError(.invalidArgument, "the assignment names no hub or device id")
        }
        let authentication = try Authentication(
            tokenSource: assignment.credential,
            x509: assignment.identity,
            missing: "the assignment carries no credential"
        )
        self.init(
            transport: transport,
            hubHost: assignment.assignedHub,
            deviceId: assignment.deviceId,
            authentication: authentication,
            port: port,
            trustRoots: trustRoots
        )
    }
}
