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
        builder.build(encodedResource: resource.encoded, key: key, expiry: expiry, keyName: keyName)
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
    public func validate(with key: SymmetricKey, now: UInt64, expectedResource: SASResource? = nil) throws(AzureIoTError) {
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
    public var debugDescription: String { self.description }
}

/// Builds a token's bytes in one buffer: the hot path of token minting.
struct SASTokenBuilder {
    private(set) var encodedResource = ""
    private(set) var signature = ""
    private(set) var token = ""

    mutating func build(encodedResource: String, key: SymmetricKey, expiry: UInt64, keyName: String?) {
        var expiryDigits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                           UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let digitCount = withUnsafeMutableBytes(of: &expiryDigits) { Self.writeDecimal(expiry, into: $0) }

        var message: [UInt8] = []
        message.reserveCapacity(encodedResource.utf8.count + 1 + digitCount)
        message.append(contentsOf: encodedResource.utf8)
        message.append(UInt8(ascii: "\n"))
        withUnsafeBytes(of: &expiryDigits) { message.append(contentsOf: $0.prefix(digitCount)) }

        var mac = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &mac) { out in
            message.withUnsafeBytes { key.hmac.authenticate($0, into: out) }
        }

        var signatureBase64: [UInt8] = []
        signatureBase64.reserveCapacity(44)
        withUnsafeBytes(of: &mac) { Base64.append(encoding: $0, to: &signatureBase64) }

        var token: [UInt8] = []
        token.reserveCapacity(64 + encodedResource.utf8.count + 3 * 44 + (keyName?.utf8.count ?? 0))
        token.append(contentsOf: "SharedAccessSignature sr=".utf8)
        token.append(contentsOf: encodedResource.utf8)
        token.append(contentsOf: "&sig=".utf8)
        PercentEncoding.append(encoding: signatureBase64, to: &token)
        token.append(contentsOf: "&se=".utf8)
        withUnsafeBytes(of: &expiryDigits) { token.append(contentsOf: $0.prefix(digitCount)) }
        if let keyName {
            token.append(contentsOf: "&skn=".utf8)
            PercentEncoding.append(encoding: keyName.utf8, to: &token)
        }
        self.encodedResource = encodedResource
        self.signature = String(decoding: signatureBase64, as: UTF8.self)
        self.token = String(decoding: token, as: UTF8.self)
    }

    /// Writes `value` in decimal to the start of `buffer` and returns the digit count.
    private static func writeDecimal(_ value: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var digits = 0
        var remaining = value
        repeat {
            digits += 1
            remaining /= 10
        } while remaining > 0
        remaining = value
        for position in stride(from: digits - 1, through: 0, by: -1) {
            buffer[position] = UInt8(ascii: "0") + UInt8(remaining % 10)
            remaining /= 10
        }
        return digits
    }
}
