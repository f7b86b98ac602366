/// Group-enrollment key derivation for DPS symmetric-key attestation.
public enum DerivedKey {
    /// Returns `base64(HMAC-SHA256(base64decode(groupKey), utf8(registrationId)))`, the device key a device in a
    /// group enrollment registers with. Throws ``AzureIoTError/Code/invalidBase64`` for a bad group key and
    /// ``AzureIoTError/Code/invalidArgument`` for an empty registration id.
    public static func compute(groupKey: String, registrationId: String) throws(AzureIoTError) -> String {
        guard !registrationId.isEmpty else {
            throw AzureIoTError(.invalidArgument, "the registration id is empty")
        }
        let key = try SymmetricKey(base64: groupKey)
        return try key.derivedKey(forRegistrationId: registrationId).base64
    }
}
