import AzureIoTCore
import Foundation
import Synchronization
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

/// Typed Plug and Play commands: decoding, encoding, and the status of every kind of failure.
@Suite("Plug and Play commands")
struct PlugAndPlayCommandsTests {
    struct Report: Codable, Equatable, Sendable {
        var maxTemp: Double
        var minTemp: Double
        var startTime: String
    }

    struct Broken: Error {}

    static func commands() -> PlugAndPlayCommands {
        var commands = PlugAndPlayCommands()
        commands.register("getMaxMinReport", component: "thermostat1") { (since: String) in
            Report(maxTemp: 23.5, minTemp: 18, startTime: since)
        }
        commands.register("reboot") { (delay: Int?) -> [String: Int] in
            guard let delay, delay >= 0 else { throw PlugAndPlayCommands.Failure(status: 409, message: "busy") }
            return ["delay": delay]
        }
        commands.register("selfTest") { () async throws -> Bool in throw Broken() }
        commands.register("ping", component: "diagnostics") { "pong" }
        return commands
    }

    @Test("the method names on the wire: {component}*{command}, or the command alone for the default component")
    func names() {
        #expect(
            PlugAndPlayCommands.methodName("getMaxMinReport", component: "thermostat1") == "thermostat1*getMaxMinReport"
        )
        #expect(PlugAndPlayCommands.methodName("reboot") == "reboot")
        #expect(
            Self.commands().methodNames == ["diagnostics*ping", "reboot", "selfTest", "thermostat1*getMaxMinReport"]
        )
    }

    @Test("a typed request is decoded and the typed response encoded with 200; every failure gets its status")
    func answers() async throws {
        let commands = Self.commands()
        let report = await commands.answer(
            method: "thermostat1*getMaxMinReport",
            payload: Array(#""2026-12-01T00:00:00Z""#.utf8)
        )
        #expect(report.status == 200)
        #expect(
            try JSONDecoder().decode(Report.self, from: Data(report.payload))
                == Report(maxTemp: 23.5, minTemp: 18, startTime: "2026-12-01T00:00:00Z")
        )
        // A payload of the wrong type, or not JSON at all.
        for payload in ["42", "{\"since\":1}", "not json", ""] {
            let refused = await commands.answer(method: "thermostat1*getMaxMinReport", payload: Array(payload.utf8))
            #expect(refused.status == 400, "\(payload)")
            #expect(
                try JSONValue(parsing: refused.payload)["message"]?.stringValue?.contains("getMaxMinReport") == true
            )
        }
        // The same command name on another component, or none, is another command.
        #expect(await commands.answer(method: "getMaxMinReport", payload: []).status == 404)
        #expect(await commands.answer(method: "thermostat2*getMaxMinReport", payload: []).status == 404)
        // An empty payload decodes as null for an optional request; a Failure picks the status.
        #expect(await commands.answer(method: "reboot", payload: []).status == 409)
        #expect(
            await commands.answer(method: "reboot", payload: Array("5".utf8))
                == .init(status: 200, payload: Array(#"{"delay":5}"#.utf8))
        )
        // Any other error: 500 with a fixed message, never the error's own text.
        let failed = await commands.answer(method: "selfTest", payload: [])
        #expect(
            failed.status == 500
                && String(decoding: failed.payload, as: UTF8.self) == #"{"message":"the command failed"}"#
        )
        // A command without a request ignores whatever the payload holds.
        #expect(
            await commands.answer(method: "diagnostics*ping", payload: Array("{{{".utf8))
                == .init(status: 200, payload: Array(#""pong""#.utf8))
        )
    }

    @Test("respond(to:) sends the answer through the request and says whether the command was known")
    func respond() async throws {
        let sent = Mutex<[(Int, String)]>([])
        func request(_ name: String, _ payload: String) -> MethodRequest {
            MethodRequest(name: name, requestId: "1", payload: Array(payload.utf8)) { status, body in
                sent.withLock { $0.append((status, String(decoding: body, as: UTF8.self))) }
            }
        }
        let commands = Self.commands()
        #expect(try await commands.respond(to: request("reboot", "1")))
        #expect(try await !commands.respond(to: request("unknown", "{}")))
        let answers = sent.withLock { $0 }
        #expect(answers.map(\.0) == [200, 404])
        #expect(answers.last?.1 == #"{"message":"no command 'unknown' on this device"}"#)
    }
}
