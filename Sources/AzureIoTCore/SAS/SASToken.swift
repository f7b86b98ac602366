/// A shared access signature token:
/// `SharedAccessSignature sr={enc(resource)}&sig={enc(signature)}&se={expiry}[&skn={keyName}]`.
///
/// Mint one with ``generate(for:key:expiry:keyName:)`` or parse one with ``init(parsing:)``; servers and test
/// harnesses check one with ``validate(with:now:expectedResource:)``. The token is a bearer secret: ``description``
/// redacts the signature, and ``secretValue`` is the only way to read the whole string.
public struct SASToken: Sendable {
    /// The resource the token grants access to (decoded `sr`).
    public let resource: SASResource
    /// The `sr` exactly as it appears in the token; the signature covers these bytes.
    public let encodedResource: String
    /// The expiry, in seconds since 1970-01-01T00:00:00Z (`se`).
    public let expiry: UInt64
    /// The shared access policy name (`skn`), absent for device and module keys.
    public let keyName: String?
    /// The decoded signature (base64 text).
    let signature: String
    /// The `se` text exactly as it appears in the token.
    let expiryText: Substring
    /// The full token string.
    public let secretValue: String

    /// The literal that starts every token.
    static let prefix = "SharedAccessSignature "

    /// Mints a token for `resource`, signed with `key`, valid until `expiry` (seconds since the Unix epoch).
    /// Pass `keyName` for policy keys and `"registration"` for DPS; leave it `nil` for device and module keys.
    public static func generate(
        for resource: SASResource,
        key: SymmetricKey,
        expiry: UInt64,
        keyName: String? = nil
    ) -> SASToken {
        var builder = SASTokenBuilder()
        builder.build(encodedResource: resource.encoded, key: key, expiry: expiry, keyName: keyName)
        return SASToken(
            resource: resource,
            encodedResource: builder.encodedResource,
            expiry: expiry,
            keyName: keyName,
            signature: builder.signature,
            expiryText: Substring(String(expiry)),
            secretValue: builder.token
        )
    }

    /// Mints the token string directly, skipping the parsed form (the fast path for credentials and benchmarks).
    public static func string(
        for resource: SASResource,
        key: SymmetricKey,
        expiry: UInt64,
        keyName: String? = nil
    ) -> String {
        var builder = SASTokenBuilder()
        builder.build(
            encodedResource: resource.encoded,
            key: key,
            expiry: expiry,
            keyName: keyName,
            keepSignature: false
        )
        return builder.token
    }

    private init(
        resource: SASResource,
        encodedResource: String,
        expiry: UInt64,
        keyName: String?,
        signature: String,
        expiryText: Substring,
        secretValue: String
    ) {
        self.resource = resource
        self.encodedResource = encodedResource
        self.expiry = expiry
        self.keyName = keyName
        self.signature = signature
        self.expiryText = expiryText
        self.secretValue = secretValue
    }

    /// Parses a token string. Fields may come in any order; `sr`, `sig` and `se` are required, `skn` optional, and
    /// any other, repeated or empty field throws ``AzureIoTError/Code/malformedSASToken``.
    public init(parsing token: String) throws(AzureIoTError) {
        guard token.hasPrefix(Self.prefix) else {
            throw AzureIoTError(.malformedSASToken, "a SAS token must start with 'SharedAccessSignature '")
        }
        let body = token.dropFirst(Self.prefix.count)
        var sr: Substring?
        var sig: Substring?
        var se: Substring?
        var skn: Substring?
        for field in body.split(separator: "&", omittingEmptySubsequences: false) {
            guard let equals = field.firstIndex(of: "=") else {
                throw AzureIoTError(.malformedSASToken, "a SAS token field has no '=' (expected key=value)")
            }
            let name = field[..<equals]
            let value = field[field.index(after: equals)...]
            guard !value.isEmpty else {
                throw AzureIoTError(.malformedSASToken, "the SAS token field '\(Self.safeName(name))' is empty")
            }
            switch name {
            case "sr": try Self.assign(&sr, value, name: "sr")
            case "sig": try Self.assign(&sig, value, name: "sig")
            case "se": try Self.assign(&se, value, name: "se")
            case "skn": try Self.assign(&skn, value, name: "skn")
            default:
                throw AzureIoTError(.malformedSASToken, "unknown SAS token field '\(Self.safeName(name))'")
            }
        }
        guard let sr else { throw AzureIoTError(.malformedSASToken, "the SAS token has no 'sr' field") }
        guard let sig else { throw AzureIoTError(.malformedSASToken, "the SAS token has no 'sig' field") }
        guard let se else { throw AzureIoTError(.malformedSASToken, "the SAS token has no 'se' field") }
        guard se.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }), let expiry = UInt64(se) else {
            throw AzureIoTError(.malformedSASToken, "the SAS token's 'se' must be decimal seconds since 1970")
        }
        let decodedResource: String
        let decodedSignature: String
        do {
            decodedResource = try PercentEncoding.decode(sr)
            decodedSignature = try PercentEncoding.decode(sig)
        } catch {
            throw AzureIoTError(.malformedSASToken, "the SAS token has an invalid percent-escape")
        }
        self.init(
            resource: SASResource(uri: decodedResource),
            encodedResource: String(sr),
            expiry: expiry,
            keyName: try skn.map { value throws(AzureIoTError) in
                do { return try PercentEncoding.decode(value) } catch {
                    throw AzureIoTError(.malformedSASToken, "the SAS token's 'skn' has an invalid percent-escape")
                }
            },
            signature: decodedSignature,
            expiryText: se,
            secretValue: token
        )
    }

    /// Checks the token: the signature against `key` (constant time, over `sr` and `se` exactly as received), the
    /// expiry against `now` (seconds since 1970), and optionally the resource (host names compare
    /// case-insensitively). Throws ``AzureIoTError/Code/sasSignatureMismatch``,
    /// ``AzureIoTError/Code/sasTokenExpired`` or ``AzureIoTError/Code/sasResourceMismatch``.
    public func validate(with key: SymmetricKey, now: UInt64, expectedResource: SASResource? = nil)
        throws(AzureIoTError)
    {
        if let expectedResource, expectedResource.uri.lowercased() != self.resource.uri.lowercased() {
            throw AzureIoTError(
                .sasResourceMismatch,
                "the SAS token is for '\(self.resource.uri)', expected '\(expectedResource.uri)'"
            )
        }
        let expected = key.hmac.authenticate(Array("\(self.encodedResource)\n\(self.expiryText)".utf8))
        let presented: [UInt8]
        do {
            presented = try Base64.decode(self.signature, what: "the SAS signature")
        } catch {
            throw AzureIoTError(.sasSignatureMismatch, "the SAS token's signature is not base64")
        }
        guard constantTimeEquals(expected, presented) else {
            throw AzureIoTError(.sasSignatureMismatch, "the SAS token's signature does not match the key")
        }
        guard now < self.expiry else {
            throw AzureIoTError(.sasTokenExpired, "the SAS token expired at \(self.expiry) (now \(now))")
        }
    }

    private static func assign(_ slot: inout Substring?, _ value: Substring, name: String) throws(AzureIoTError) {
        guard slot == nil else {
            throw AzureIoTError(.malformedSASToken, "the SAS token repeats the field '\(name)'")
        }
        slot = value
    }

    /// A field name safe to echo: short and printable, or a placeholder.
    private static func safeName(_ name: Substring) -> String {
        name.count <= 16 && name.allSatisfy({ $0.isLetter || $0.isNumber }) ? String(name) : "<unprintable>"
    }
}

extension SASToken: CustomStringConvertible, CustomDebugStringConvertible {
    /// The token with its signature redacted.
    public var description: String {
        var text = "SharedAccessSignature sr=\(self.encodedResource)&sig=<redacted>&se=\(self.expiry)"
        if let keyName { text += "&skn=\(keyName)" }
        return text
    }
    /// The same as `description` (secrets redacted).
    public var debugDescription: String { self.description }
}

/// Builds a token in one pass over memory sized up front: the hot path of token minting.
struct SASTokenBuilder {
    private(set) var encodedResource = ""
    private(set) var signature = ""
    private(set) var token = ""

    /// Builds the token; with `keepSignature` also keeps the signature text for the parsed form.
    mutating func build(
        encodedResource: String,
        key: SymmetricKey,
        expiry: UInt64,
        keyName: String?,
        keepSignature: Bool = true
    ) {
        var mac = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        encodedResource.withUTF8Bytes { resource in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: resource.count + 21) { message in
                var writer = ByteWriter(message.baseAddress!)
                writer.write(resource)
                writer.write(UInt8(ascii: "\n"))
                writer.writeDecimal(expiry)
                let signed = UnsafeRawBufferPointer(start: message.baseAddress, count: writer.count)
                withUnsafeMutableBytes(of: &mac) { key.hmac.authenticate(signed, into: $0) }
            }
        }
        var signatureText = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &signatureText) { buffer in
            var writer = ByteWriter(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self))
            withUnsafeBytes(of: &mac) { writer.writeBase64($0) }
        }
        let signatureBytes = 44
        let keyNameCount = keyName?.utf8.count ?? 0
        let capacity = 25 + encodedResource.utf8.count + 5 + 3 * signatureBytes + 4 + 20 + 5 + 3 * keyNameCount
        self.token = String(unsafeUninitializedCapacity: capacity) { output in
            var writer = ByteWriter(output.baseAddress!)
            writer.write("SharedAccessSignature sr=")
            encodedResource.withUTF8Bytes { writer.write($0) }
            writer.write("&sig=")
            withUnsafeBytes(of: &signatureText) {
                writer.writePercentEncoded(UnsafeRawBufferPointer(rebasing: $0[..<signatureBytes]))
            }
            writer.write("&se=")
            writer.writeDecimal(expiry)
            if let keyName {
                writer.write("&skn=")
                keyName.withUTF8Bytes { writer.writePercentEncoded($0) }
            }
            return writer.count
        }
        guard keepSignature else { return }
        self.encodedResource = encodedResource
        self.signature = withUnsafeBytes(of: &signatureText) { String(decoding: $0[..<signatureBytes], as: UTF8.self) }
    }
}
