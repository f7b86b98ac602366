import AzureIoTCore
public import AzureIoTDevice

extension DeviceClientConfiguration {
    /// The configuration of an IoT Edge module: connect to edgeHub (`IOTEDGE_GATEWAYHOSTNAME`) as
    /// `{deviceId}/{moduleId}` of `IOTEDGE_IOTHUBHOSTNAME`, trust the workload API's trust bundle, and sign tokens
    /// through the workload API. Reads the trust bundle once, now; throws its ``EdgeError``.
    ///
    /// Send to an output with `TelemetryMessage(outputName:)`; messages routed to the module's inputs arrive on
    /// `DeviceClient.cloudToDeviceMessages` with `inputName` set.
    public static func edgeModule(
        environment: EdgeEnvironment,
        transport: Transport = .mqtt,
        port: Int? = nil
    ) async throws(EdgeError) -> DeviceClientConfiguration {
        let bundle = try await WorkloadClient(environment: environment).trustBundle()
        return DeviceClientConfiguration(
            transport: transport,
            hubHost: environment.hubHostName,
            deviceId: environment.deviceId,
            moduleId: environment.moduleId,
            authentication: .sas(WorkloadTokenSource(environment: environment)),
            gatewayHostName: environment.gatewayHostName,
            port: port,
            trustRoots: .pem(bundle)
        )
    }
}
