/// This SDK's version and the one product name every transport announces it with: the MQTT user name's
/// `DeviceClientType`, AMQP's `com.microsoft:client-version` and the DPS `User-Agent`.
public enum SDKVersion {
    /// The version of this package.
    public static let version = "0.1.0"
    /// `azure-iot-swift/{version}`.
    public static let clientName = "azure-iot-swift/\(version)"
}
