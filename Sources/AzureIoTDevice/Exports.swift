/// The shared types (messages, twin, credentials, connection strings, trust roots, the retry policy) are part of this
/// module's API, and so is DPSClient (provisioning): a device application imports AzureIoTDevice alone.
@_exported public import AzureIoTCore
@_exported public import DPSClient
