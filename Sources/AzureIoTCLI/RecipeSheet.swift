import AzureIoTCore
import AzureIoTEmulator

/// The write-ups' recipes filled in for a running emulator: what a reader pastes into a terminal, mosquitto.conf,
/// Node-RED's MQTT node or the uamqp sample to try each one in a minute. The commands keep the write-ups' own forms
/// (the user name without `?`, `api-version=2019-03-31`, the two spaces in `Content-Encoding:  utf-8`); the only
/// additions are the emulator's CA (`--cacert`, `bridge_cafile`) and its ports.
///
/// It prints test credentials of a local emulator on purpose, as the endpoints JSON does.
struct RecipeSheet {
    /// A device of the hub that authenticates with a key.
    var deviceId: String
    var deviceKey: SymmetricKey
    /// A symmetric-key enrollment group and a registration id to derive a key for.
    var groupName: String
    var groupKey: SymmetricKey
    var registrationId: String

    /// The sheet, one line per element; tokens are valid for a day.
    func lines(for endpoints: EmulatorEndpoints, now: UInt64 = UnixTime.now()) throws(AzureIoTError) -> [String] {
        let expiry = now + 86_400
        let ca = endpoints.caCertificatePath
        let dps = "https://localhost:\(endpoints.dps.port)/\(endpoints.idScope)/registrations/\(self.registrationId)"
        let derived = try self.groupKey.derivedKey(forRegistrationId: self.registrationId)
        let dpsToken = SASToken.generate(
            for: .registration(idScope: endpoints.idScope, registrationId: self.registrationId),
            key: derived,
            expiry: expiry,
            keyName: "registration"
        ).secretValue
        let hubToken = SASToken.generate(
            for: .device(hubHost: endpoints.hubHost, deviceId: self.deviceId),
            key: self.deviceKey,
            expiry: expiry
        ).secretValue
        let headers =
            "-H 'Content-Type: application/json' -H 'Content-Encoding:  utf-8' -H 'Authorization: \(dpsToken)'"
        var lines = [
            "Ready to paste: the write-ups' recipes against this emulator (see the README, 'The write-ups' recipes').",
            "CA file (trust it as an IoT Edge root CA): \(ca)",
            "",
            "# DPS over REST, symmetric key, group '\(self.groupName)': derive the device key (it prints \(derived.base64EncodedSecret))",
            "KEY=\(self.groupKey.base64EncodedSecret)",
            "REG_ID=\(self.registrationId)",
            "keybytes=$(echo $KEY | base64 --decode | xxd -p -u -c 1000)",
            "echo -n $REG_ID | openssl sha256 -mac HMAC -macopt hexkey:$keybytes -binary | base64",
            "# its SAS token (sr=\(endpoints.idScope)/registrations/\(self.registrationId), skn=registration), then register and poll",
            dpsToken,
            "curl -L -i -X PUT --cacert \(ca) \(headers) -d '{\"registrationId\": \"\(self.registrationId)\"}' \(dps)/register?api-version=2019-03-31",
            "curl -L -i -X GET --cacert \(ca) \(headers) \(dps)/operations/[operation_id]?api-version=2019-03-31",
            "",
            "# mosquitto bridge: add to mosquitto.conf, then mosquitto_pub -t devices/\(self.deviceId)/messages/events/ -m \"hello world!\"",
            "connection azureiot-bridge",
            "address localhost:\(endpoints.mqtt.port)",
            "remote_username \(endpoints.hubHost)/\(self.deviceId)/api-version=2019-03-31",
            "remote_password \(hubToken)",
            "remote_clientid \(self.deviceId)",
            "bridge_cafile \(ca)",
            "try_private false",
            "cleansession true",
            "start_type automatic",
            "bridge_insecure false",
            "bridge_protocol_version mqttv311",
            "bridge_tls_version tlsv1.2",
            "notifications false",
            "topic devices/\(self.deviceId)/messages/events/# out 1",
            "",
            "# Node-RED MQTT node: server localhost, port \(endpoints.mqtt.port), TLS with the CA file, MQTT 3.1.1",
            "Client ID: \(self.deviceId)",
            "Username: \(endpoints.hubHost)/\(self.deviceId)/api-version=2016-11-14",
            "Password: \(hubToken)",
            "Topic: devices/\(self.deviceId)/messages/events/$.ct=application%2Fjson&$.ce=utf-8",
            "",
            "# uamqp (raw AMQP write-up): the sample's config lines",
            "config['hostname'] = '\(endpoints.hubHost)'",
            "config['device'] = '\(self.deviceId)'",
            "config['key_name'] = ''",
            "config['access_key'] = '\(self.deviceKey.base64EncodedSecret)'",
            "config['edgehostname'] = 'localhost'",
            "config['edgerootcacert'] = '\(ca)'",
        ]
        if endpoints.amqp.port != 5671 {
            lines.append(
                "# the sample's SASLPlain dials 5671; this emulator's AMQP port is \(endpoints.amqp.port): add port=\(endpoints.amqp.port) to SASLPlain(...), or set amqpPort 5671"
            )
        }
        return lines
    }
}
