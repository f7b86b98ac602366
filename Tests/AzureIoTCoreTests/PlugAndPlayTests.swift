import AzureIoTCore
import Testing

/// The Plug and Play conventions as JSON: components, writable-property acknowledgements, component commands.
@Suite("Plug and Play conventions")
struct PlugAndPlayTests {
    @Test("reported properties: a component is marked with __t: c; the default component is the top level")
    func reported() throws {
        let inComponent = PlugAndPlay.reportedProperties(["maxTempSinceLastReboot": 38.7], component: "thermostat1")
        #expect(
            inComponent
                == .object(["thermostat1": .object(["__t": "c", "maxTempSinceLastReboot": 38.7])])
        )
        #expect(PlugAndPlay.reportedProperties(["serialNumber": "SN-1"]) == .object(["serialNumber": "SN-1"]))
        #expect(
            String(decoding: inComponent.jsonBytes, as: UTF8.self)
                == #"{"thermostat1":{"__t":"c","maxTempSinceLastReboot":38.7}}"#
        )
    }

    @Test("writable-property acknowledgement: value, ac, av and ad, in its component")
    func acknowledgement() throws {
        let ack = PlugAndPlay.writablePropertyAcknowledgement(
            name: "targetTemperature",
            value: 21.5,
            status: 200,
            version: 7,
            description: "applied",
            component: "thermostat1"
        )
        #expect(
            ack
                == .object([
                    "thermostat1": .object([
                        "__t": "c",
                        "targetTemperature": .object(["value": 21.5, "ac": 200, "av": 7, "ad": "applied"]),
                    ])
                ])
        )
        let plain = PlugAndPlay.writablePropertyAcknowledgement(name: "interval", value: 5, status: 400, version: 2)
        #expect(plain == .object(["interval": .object(["value": 5, "ac": 400, "av": 2])]))
    }

    @Test("desired sections: a component's properties without __t and $version; absent components are nil")
    func desired() throws {
        let patch = try JSONValue(
            parsing: Array(#"{"thermostat1":{"__t":"c","targetTemperature":22},"interval":5,"$version":9}"#.utf8)
        )
        #expect(PlugAndPlay.properties(of: patch, component: "thermostat1") == ["targetTemperature": 22])
        #expect(PlugAndPlay.properties(of: patch)?["interval"] == 5)
        #expect(PlugAndPlay.properties(of: patch)?["$version"] == nil)
        #expect(PlugAndPlay.properties(of: patch, component: "thermostat2") == nil)
    }

    @Test("component commands: thermostat1*getMaxMinReport splits; a plain method has no component")
    func commands() {
        let command = MethodRequest(name: "thermostat1*getMaxMinReport", requestId: "1", payload: []) { _, _ in }
        #expect(command.componentName == "thermostat1" && command.commandName == "getMaxMinReport")
        let plain = MethodRequest(name: "reboot", requestId: "2", payload: []) { _, _ in }
        #expect(plain.componentName == nil && plain.commandName == "reboot")
    }
}
