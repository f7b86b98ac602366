/// What a provisioning service assigned a device: the hub, the device id there, and what to connect with (the
/// symmetric key DPS attested, or the X.509 identity). DPSClient's `ProvisioningResult` is one; a device that stored
/// its assignment can bring its own.
public protocol DeviceAssignment: Sendable {
    /// The assigned IoT Hub host, e.g. `myhub.azure-devices.net`.
    var assignedHub: String { get }
    /// The device id in that hub.
    var deviceId: String { get }
    /// The hub credential for symmetric-key attestation; `nil` for X.509.
    var credential: SymmetricKeyCredential? { get }
    /// The client certificate for X.509 attestation; `nil` for a symmetric key.
    var identity: X509Identity? { get }
}
