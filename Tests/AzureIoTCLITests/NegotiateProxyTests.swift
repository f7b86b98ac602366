import AzureIoTTestSupport
import Foundation
import Testing

/// Proxy authentication with Negotiate (Kerberos), which libcurl runs for the SDK through GSS-API: a realm of the
/// test's own (MIT krb5kdc), squid checking tickets with `negotiate_kerberos_auth`, and `azure-iot` through it.
@Suite("Negotiate (Kerberos) proxy authentication", .timeLimit(.minutes(3)))
struct NegotiateProxyTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("azure-iot")
            .path
    }

    @Test(
        "with a ticket, telemetry over MQTT-WS and AMQP-WS and DPS over AMQP-WS go through squid as the Kerberos user; without one, a typed 407"
    )
    func negotiate() async throws {
        let realm = try await KerberosRealm.start()
        defer { realm.stop() }
        let squid = try await ProxyPeer.squid(.negotiate(realm))
        defer { squid.process.stop() }
        let emulator = try await PeerProcess(Self.binary, ["emulator"], readyMarker: "}\n", timeout: .seconds(60))
        // Killed if the test ends early; an orderly shutdown (awaited, not blocking a thread) otherwise.
        defer { emulator.stop() }
        let text = try #require(emulator.output.split(separator: "\n").first { $0.hasPrefix("{") }).description
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let ca = try #require(json["caCertificatePath"] as? String)
        let connectionString = try #require(
            (json["devices"] as? [[String: Any]])?.first?["connectionString"] as? String
        )
        let webSockets = try #require((json["webSockets"] as? [String: Any])?["port"] as? Int)
        let dpsWebSockets = try #require((json["dpsWebSockets"] as? [String: Any])?["port"] as? Int)
        let groupKey = try #require(
            (json["enrollments"] as? [[String: Any]])?.first { $0["kind"] as? String == "group" }?["primaryKey"]
                as? String
        )
        // No user name or password in the URL: libcurl takes the Kerberos ticket from the credentials cache. The host
        // is `localhost`, the name in the proxy's service principal.
        let proxy = "http://:@localhost:\(squid.port)"
        let withTicket = realm.environment(cache: try await realm.ticketCache())
        for transport in ["mqtt-ws", "amqp-ws"] {
            let sent = try await PeerProcess.capture(
                Self.binary,
                [
                    "send", "--transport", transport, "--proxy", proxy, "--connection-string", connectionString,
                    "--ca-file", ca, "--port", String(webSockets), "through kerberos",
                ],
                environment: withTicket
            )
            #expect(sent.status == 0 && sent.stderr.contains("sent 1/1"), "\(transport): \(sent.stderr)")
        }
        let provisioned = try await PeerProcess.capture(
            Self.binary,
            [
                "provision", "--transport", "amqp-ws", "--proxy", proxy, "--scope", "0ne00EMU01", "--registration-id",
                "kerberos-1", "--group-key", groupKey, "--endpoint", "localhost:\(dpsWebSockets)", "--ca-file", ca,
            ],
            environment: withTicket
        )
        #expect(provisioned.status == 0, "\(provisioned.stdout)\(provisioned.stderr)")
        #expect(provisioned.stdout.contains("deviceId: kerberos-1"), "\(provisioned.stdout)")
        // squid names the Kerberos user on each tunnel it let through (a line is written once a tunnel closes).
        try await eventually("squid logged the tunnels with the Kerberos user", within: .seconds(20)) {
            squid.log.components(separatedBy: KerberosRealm.user).count - 1 >= 3
        }

        // An empty credentials cache: the proxy's 407 is a typed error naming the proxy.
        let withoutTicket = realm.environment(cache: realm.folder + "/empty-cache")
        let refused = try await PeerProcess.capture(
            Self.binary,
            [
                "send", "--transport", "mqtt-ws", "--proxy", proxy, "--connection-string", connectionString,
                "--ca-file", ca, "--port", String(webSockets), "no ticket",
            ],
            environment: withoutTicket
        )
        #expect(refused.status == 3, "\(refused.stderr)")
        #expect(refused.stderr.contains("proxyAuthenticationRequired"), "\(refused.stderr)")
        #expect(refused.stderr.contains("localhost:\(squid.port)") && !refused.stderr.contains("SharedAccess"))
        await emulator.shutDown()
    }
}
