import AzureIoTCore
import AzureIoTTestSupport
import Testing

@testable import AzureIoTEmulator

/// The emulator's query subset and `If-Match` reading, without sockets: what parses, what matches, what is refused,
/// and random text that must be refused or parsed, never trap.
@Suite("Twin query and If-Match")
struct TwinQueryTests {
    static let twin: JSONValue = [
        "deviceId": "pump-7",
        "status": "enabled",
        "tags": ["location": ["building": "43", "floor": 2], "critical": true],
        "properties": ["reported": ["firmware": "2.1.0", "temperature": 21.5], "desired": ["rate": 5]],
    ]

    @Test(
        "comparisons, AND/OR/NOT, parentheses and case-insensitive keywords",
        arguments: [
            ("SELECT * FROM devices", true),
            ("select * from devices where deviceId = 'pump-7'", true),
            ("SELECT * FROM devices WHERE deviceId = \"pump-7\"", true),
            ("SELECT * FROM devices WHERE tags.location.building = '43' AND tags.location.floor > 1", true),
            ("SELECT * FROM devices WHERE tags.location.floor >= 3 OR tags.critical = true", true),
            ("SELECT * FROM devices WHERE NOT (status = 'disabled')", true),
            ("SELECT * FROM devices WHERE properties.reported.temperature < 21.6", true),
            ("SELECT * FROM devices WHERE properties.reported.temperature <= 21.4", false),
            ("SELECT * FROM devices WHERE properties.reported.firmware <> '2.1.0'", false),
            ("SELECT * FROM devices WHERE properties.desired.rate != 4", true),
            ("SELECT * FROM devices WHERE tags.missing = 1", false),
            ("SELECT * FROM devices WHERE tags.location.floor = '2'", false),
            ("SELECT * FROM devices WHERE (deviceId = 'a' OR deviceId = 'pump-7') AND status = 'enabled'", true),
        ]
    )
    func matches(_ text: String, _ expected: Bool) throws {
        let query = try TwinQuery(parsing: text)
        #expect(query.source == .devices)
        #expect(query.matches(Self.twin) == expected, "\(text)")
    }

    @Test("modules are a collection of their own")
    func modules() throws {
        #expect(try TwinQuery(parsing: "SELECT * FROM devices.modules WHERE moduleId = 'm'").source == .modules)
    }

    @Test(
        "refused: other statements and collections, projections, broken syntax, too long, too deep",
        arguments: [
            "", "DELETE FROM devices", "SELECT deviceId FROM devices", "SELECT * FROM jobs", "SELECT * FROM",
            "SELECT * FROM devices WHERE", "SELECT * FROM devices WHERE a", "SELECT * FROM devices WHERE a =",
            "SELECT * FROM devices WHERE a = b", "SELECT * FROM devices WHERE (a = 1",
            "SELECT * FROM devices WHERE a = 'x",
            "SELECT * FROM devices WHERE a..b = 1", "SELECT * FROM devices WHERE a = 1 extra",
            "SELECT * FROM devices WHERE a ~ 1", "SELECT * FROM devices WHERE 1e = 1",
            "SELECT * FROM devices WHERE " + String(repeating: "(", count: 40) + "a = 1"
                + String(repeating: ")", count: 40),
            "SELECT * FROM devices WHERE " + String(repeating: "NOT ", count: 40) + "a = 1",
            "SELECT * FROM devices WHERE deviceId = '" + String(repeating: "x", count: 9_000) + "'",
            "SELECT * FROM devices WHERE " + Array(repeating: "a = 1", count: 400).joined(separator: " OR "),
        ]
    )
    func refused(_ text: String) {
        #expect(throws: TwinQuery.ParseError.self) { try TwinQuery(parsing: text) }
    }

    @Test("random text is parsed or refused, never a trap")
    func randomText() async {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("SELECT*FROMdevices.modulesWHEREANDORNOT()'\"=<>!0123456789 -_$\u{0}\u{FFFF}é")
        var parsed = 0
        for iteration in 0..<5_000 {
            await yieldToOtherTests(at: iteration)
            let length = Int.random(in: 0..<80, using: &generator)
            let text =
                "SELECT * FROM devices WHERE "
                + String((0..<length).map { _ in alphabet.randomElement(using: &generator)! })
            if let query = try? TwinQuery(parsing: text) {
                _ = query.matches(Self.twin)
                parsed += 1
            }
        }
        #expect(parsed < 5_000)
    }

    @Test(
        "If-Match: quoted, weak, wildcard (the Python SDK's quoted \"*\"), and absent",
        arguments: [
            (#""*""#, EntityTagCondition.any), ("*", .any), (#""AAAA""#, .tag("AAAA")), ("AAAA", .tag("AAAA")),
            (#"W/"AAAA""#, .tag("AAAA")),
        ]
    )
    func ifMatch(_ header: String, _ expected: EntityTagCondition) {
        #expect(EntityTagCondition(header: header) == expected)
    }

    @Test("an empty or missing If-Match is no condition")
    func noCondition() {
        #expect(EntityTagCondition(header: nil) == nil)
        #expect(EntityTagCondition(header: "  ") == nil)
        #expect(EntityTagCondition.any.matches("x") && EntityTagCondition.tag("x").matches("x"))
        #expect(!EntityTagCondition.tag("x").matches("y"))
    }
}
