import AzureIoTCore

/// The hub's shared access policies with their keys decoded, and the check of a service SAS token against them,
/// shared by the REST API and service-side AMQP (CBS put-token and SASL PLAIN `{policy}@sas.root.{hub}`).
struct ServicePolicies: Sendable {
    struct Policy: Sendable {
        var rights: SharedAccessPolicy.Rights
        var keys: [SymmetricKey]
        /// The same keys as Service Bus and Event Hubs use them: the base64 text's bytes, not the bytes it encodes.
        var serviceBusKeys: [SymmetricKey]
    }

    let hubHost: String
    private let table: [String: Policy]

    init(hubHost: String, policies: [SharedAccessPolicy]) throws(AzureIoTError) {
        self.hubHost = hubHost
        var table: [String: Policy] = [:]
        for policy in policies {
            let texts = [policy.primaryKey, policy.secondaryKey].compactMap { $0 }
            table[policy.keyName] = Policy(
                rights: policy.rights,
                keys: try texts.map { key throws(AzureIoTError) in try SymmetricKey(base64: key) },
                serviceBusKeys: try texts.map { key throws(AzureIoTError) in try SymmetricKey(bytes: Array(key.utf8)) }
            )
        }
        self.table = table
    }

    /// The rights `token` grants, or why it grants none (never containing the token). `hosts` are the other names
    /// the client reached the hub by (the HTTP `Host`, the CBS audience's host): clients of the emulator sign for
    /// `localhost:port` as readily as for the hub's name. `keyName` overrides the token's `skn` (SASL PLAIN names
    /// the policy in its user name). `serviceBus`: the token is signed as Service Bus and Event Hubs sign (with the
    /// key's text), as for the Event Hub-compatible endpoint.
    func authorize(
        token text: String,
        hosts: [String],
        keyName: String? = nil,
        serviceBus: Bool = false
    ) -> Result<SharedAccessPolicy.Rights, Refusal> {
        let token: SASToken
        do throws(AzureIoTError) {
            token = try SASToken(parsing: text)
        } catch {
            return .failure(Refusal(reason: "not a SAS token: \(error.message)"))
        }
        let audience = token.resource.uri.lowercased()
        let accepted = ([self.hubHost] + hosts).map { $0.lowercased() }
        guard accepted.contains(audience) else {
            return .failure(Refusal(reason: "the SAS token's resource is not this hub"))
        }
        guard let name = keyName ?? token.keyName, let policy = self.table[name] else {
            return .failure(Refusal(reason: "the SAS token names no shared access policy of this hub"))
        }
        var reason = "the SAS token's signature does not match the policy's keys"
        for key in serviceBus ? policy.serviceBusKeys : policy.keys {
            do throws(AzureIoTError) {
                try token.validate(with: key, now: UnixTime.now())
                return .success(policy.rights)
            } catch {
                if error.code == .sasTokenExpired { reason = "the SAS token has expired" }
            }
        }
        return .failure(Refusal(reason: reason))
    }

    struct Refusal: Error, CustomStringConvertible {
        var reason: String
        var description: String { self.reason }
    }
}
