import AzureIoTCore
import HubAMQP
import Testing

@testable import DPSClient

/// How a failed DPS-over-AMQP exchange reaches the provisioning client: transport failures as the `AzureIoTError`
/// they are (retried when transient, certificate codes kept, as over MQTT and REST), the rest typed with the AMQP
/// error as the cause.
@Suite("DPS over AMQP: failures keep their codes and causes")
struct DPSAMQPErrorMappingTests {
    @Test("a TLS failure under the AMQP error comes out as that AzureIoTError and maps to the certificate code")
    func transportUnderneath() throws {
        let tls = AzureIoTError(.certificateUntrusted, "unable to get local issuer certificate")
        let mapped = DPSAMQPExchange.provisioningError(HubAMQPError(.connectionFailed, "TLS", underlying: tls))
        let transport = try #require(mapped as? AzureIoTError)
        #expect(transport.code == .certificateUntrusted)
        let error = ProvisioningClient.transportError(transport, endpoint: "dps.example:5671")
        #expect(error.code == .serverCertificateUntrusted && error.underlying is AzureIoTError)
    }

    @Test(
        "refused credentials, a time-out, a lost connection, a refused delivery and a protocol violation",
        arguments: [
            (HubAMQPError.Code.authenticationFailed, "ProvisioningError.unauthorized"),
            (.timedOut, "AzureIoTError.timedOut"),
            (.connectionClosed, "AzureIoTError.connectionClosed"),
            (.rejected, "ProvisioningError.serviceError"),
            (.linkDetached, "ProvisioningError.serviceError"),
            (.protocolViolation, "ProvisioningError.malformedResponse"),
        ]
    )
    func codes(_ code: HubAMQPError.Code, _ expected: String) throws {
        let amqp = HubAMQPError(code, "from DPS", condition: "amqp:x")
        let mapped = DPSAMQPExchange.provisioningError(amqp)
        switch mapped {
        case let error as ProvisioningError:
            #expect("ProvisioningError.\(error.code)" == expected)
            #expect((error.underlying as? HubAMQPError)?.code == code, "the AMQP error stays the cause")
            if code == .authenticationFailed { #expect(error.httpStatus == 401) }
        case let error as AzureIoTError:
            #expect("AzureIoTError.\(error.code)" == expected)
            #expect((error.underlying as? HubAMQPError)?.code == code, "the AMQP error stays the cause")
        default:
            Issue.record("\(mapped)")
        }
    }
}
