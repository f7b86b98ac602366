/// The shared types (messages, twin, credentials, connection strings, trust roots, the retry policy) are part of this
/// module's API: a device application imports AzureIoTDevice alone (and DPSClient to provision, which links libcurl).
@_exported public import AzureIoTCore
