/// The shared types (messages, twin, credentials, connection strings, trust roots, the retry policy) are part of this
/// module's API: a device application imports AzureIoTDevice alone.
@_exported public import AzureIoTCore
