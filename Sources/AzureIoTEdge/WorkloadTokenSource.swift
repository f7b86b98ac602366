public import AzureIoTCore

/// SAS tokens for an IoT Edge module, signed by the workload API: the module never holds its key. The string to
/// sign is IoT Hub's (`urlencode(sr) + "\n" + expiry`); the token has no `skn`, as module tokens do not.
///
/// The hub clients ask for tokens through ``token(for:now:)``, which calls the workload API without blocking.
/// ``issueToken(for:now:)``, the synchronous form, cannot reach it and throws
/// `AzureIoTError/Code/signingFailed`.
public struct WorkloadTokenSource: SASTokenSource {
    /// The workload API.
    public var workload: WorkloadClient
    /// The module.
    public var moduleId: String
    /// The module identity's generation id.
    public var generationId: String
    /// Token lifetime in seconds (default one hour, as Azure's SDKs use for modules).
    public var timeToLive: UInt64
    /// The fraction of the lifetime after which the token is renewed.
    public var renewalFraction: Double

    /// A source signing for `moduleId` through `workload`.
    public init(
        workload: WorkloadClient,
        moduleId: String,
        generationId: String,
        timeToLive: UInt64 = SymmetricKeyCredential.defaultTimeToLive,
        renewalFraction: Double = SymmetricKeyCredential.defaultRenewalFraction
    ) {
        self.workload = workload
        self.moduleId = moduleId
        self.generationId = generationId
        self.timeToLive = max(60, timeToLive)
        self.renewalFraction = min(1, max(0.01, renewalFraction))
    }

    /// The source for the module `environment` describes.
    public init(environment: EdgeEnvironment) {
        self.init(
            workload: WorkloadClient(environment: environment),
            moduleId: environment.moduleId,
            generationId: environment.generationId
        )
    }

    /// Always throws `AzureIoTError/Code/signingFailed`: signing needs the workload API, which only
    /// ``token(for:now:)`` may wait for.
    public func issueToken(for resource: SASResource, now: UInt64) throws(AzureIoTError) -> IssuedSASToken {
        throw AzureIoTError(
            .signingFailed,
            "an IoT Edge module's tokens are signed by the workload API; ask with token(for:now:)"
        )
    }

    /// A token for `resource` valid from `now`, signed by the workload API. Its failure is
    /// `AzureIoTError/Code/signingFailed` with the ``EdgeError`` as `underlying`.
    public func token(for resource: SASResource, now: UInt64) async throws(AzureIoTError) -> IssuedSASToken {
        let expiry = now + self.timeToLive
        let digest: [UInt8]
        do {
            digest = try await self.workload.sign(
                moduleId: self.moduleId,
                generationId: self.generationId,
                data: Array("\(resource.encoded)\n\(expiry)".utf8)
            )
        } catch {
            throw AzureIoTError(.signingFailed, "the workload API did not sign: \(error.message)", underlying: error)
        }
        let signature = PercentEncoding.encode(Base64.encode(digest))
        let token = try SASToken(
            parsing: "SharedAccessSignature sr=\(resource.encoded)&sig=\(signature)&se=\(expiry)"
        )
        let renewAfter = UInt64((Double(self.timeToLive) * self.renewalFraction).rounded(.down))
        return IssuedSASToken(token: token, issuedAt: now, renewAt: now + max(1, renewAfter))
    }

    /// A readable summary that never contains secrets.
    public var description: String {
        "WorkloadTokenSource(module: \(self.moduleId), workload: \(self.workload.uri), ttl: \(self.timeToLive)s)"
    }
}
