/// The IoT Plug and Play conventions for properties and commands, as JSON a device sends with the calls it already
/// has (`updateReportedProperties`, method responses): components marked with `"__t": "c"`, writable-property
/// acknowledgements (`value`, `ac`, `av`, `ad`) and `{component}*{command}` method names.
public enum PlugAndPlay {
    /// The reported-properties patch for `properties` of `component` (`{"component": {"__t": "c", …}}`), or of the
    /// default component (the properties at the top level) when `component` is `nil`.
    public static func reportedProperties(_ properties: [String: JSONValue], component: String? = nil) -> JSONValue {
        guard let component else { return .object(properties) }
        var members = properties
        members["__t"] = .string("c")
        return .object([component: .object(members)])
    }

    /// The acknowledgement of a writable property a desired patch set: `{"name": {"value": …, "ac": status, "av":
    /// version, "ad": description}}`, inside its component when `component` is given. `status` is HTTP-like (200
    /// applied, 202 pending, 400 refused), `version` the desired `$version` acknowledged.
    public static func writablePropertyAcknowledgement(
        name: String,
        value: JSONValue,
        status: Int,
        version: Int,
        description: String? = nil,
        component: String? = nil
    ) -> JSONValue {
        var acknowledgement: [String: JSONValue] = [
            "value": value, "ac": .number(JSONNumber(status)), "av": .number(JSONNumber(version)),
        ]
        if let description { acknowledgement["ad"] = .string(description) }
        return Self.reportedProperties([name: .object(acknowledgement)], component: component)
    }

    /// The properties of `component` in a desired patch or twin section (the top level for `nil`), without the
    /// `__t` marker and `$version`; `nil` when the component is absent or not an object.
    public static func properties(of section: JSONValue, component: String? = nil) -> [String: JSONValue]? {
        let scope: JSONValue? = component.map { section[$0] } ?? section
        guard case .object(var members)? = scope else { return nil }
        members["__t"] = nil
        members["$version"] = nil
        return members
    }
}

extension MethodRequest {
    /// The component of a Plug and Play command (`thermostat1` in `thermostat1*getMaxMinReport`); `nil` for a
    /// command of the default component or a plain direct method.
    public var componentName: String? {
        guard let star = self.name.firstIndex(of: "*") else { return nil }
        return String(self.name[..<star])
    }

    /// The command name without its component (`getMaxMinReport` in `thermostat1*getMaxMinReport`).
    public var commandName: String {
        guard let star = self.name.firstIndex(of: "*") else { return self.name }
        return String(self.name[self.name.index(after: star)...])
    }
}
