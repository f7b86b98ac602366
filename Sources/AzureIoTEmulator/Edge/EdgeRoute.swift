import Foundation

/// One of edgeHub's routes, as a deployment writes it: `FROM {source} INTO {sink}`.
///
/// Sources: `/*` and `/messages/*` (every message), `/messages/modules/*` (every module's), `/messages/modules/{m}/*`
/// (module `m`'s), `/messages/modules/{m}/outputs/*` (any output of `m`), `/messages/modules/{m}/outputs/{o}`.
/// Sinks: `$upstream` (IoT Hub) and `BrokeredEndpoint("/modules/{m}/inputs/{i}")`. Keywords are case-insensitive,
/// as edgeHub's grammar has them. `WHERE` conditions are refused with a clear reason rather than ignored. The
/// parser is pure and bounded (``maximumLength``).
struct EdgeRoute: Sendable, Hashable {
    /// Which messages a route takes.
    enum Source: Sendable, Hashable {
        case all
        case allModules
        case module(String)
        case anyOutput(module: String)
        case output(module: String, output: String)
    }

    /// Where a route sends them.
    enum Sink: Sendable, Hashable {
        case upstream
        case moduleInput(module: String, input: String)
    }

    /// Why a route cannot be used.
    struct ParseError: Error, Sendable, CustomStringConvertible {
        var description: String
    }

    static let maximumLength = 2048

    var source: Source
    var sink: Sink

    init(source: Source, sink: Sink) {
        self.source = source
        self.sink = sink
    }

    init(parsing text: String) throws(ParseError) {
        guard text.utf8.count <= Self.maximumLength else {
            throw ParseError(description: "a route is longer than \(Self.maximumLength) bytes")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let words = trimmed.split(whereSeparator: \.isWhitespace)
        guard words.count >= 4, words[0].uppercased() == "FROM" else {
            throw ParseError(description: "a route reads FROM {source} INTO {sink}")
        }
        guard let into = words.firstIndex(where: { $0.uppercased() == "INTO" }), into == 2 else {
            if words.contains(where: { $0.uppercased() == "WHERE" }) {
                throw ParseError(description: "route conditions (WHERE) are not supported by the emulator")
            }
            throw ParseError(description: "a route reads FROM {source} INTO {sink}")
        }
        self.source = try Self.source(String(words[1]))
        self.sink = try Self.sink(words[3...].joined(separator: " "))
    }

    private static func source(_ text: String) throws(ParseError) -> Source {
        if text == "/*" || text == "/messages/*" { return .all }
        if text == "/messages/modules/*" { return .allModules }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // "", "messages", "modules", m, ...
        guard parts.count >= 5, parts[0].isEmpty, parts[1] == "messages", parts[2] == "modules",
            Self.isName(parts[3])
        else {
            throw ParseError(description: "the route source '\(text.prefix(200))' is not one the emulator knows")
        }
        let module = parts[3]
        switch parts.count {
        case 5 where parts[4] == "*":
            return .module(module)
        case 6 where parts[4] == "outputs" && parts[5] == "*":
            return .anyOutput(module: module)
        case 6 where parts[4] == "outputs" && Self.isName(parts[5]):
            return .output(module: module, output: parts[5])
        default:
            throw ParseError(description: "the route source '\(text.prefix(200))' is not one the emulator knows")
        }
    }

    private static func sink(_ text: String) throws(ParseError) -> Sink {
        if text.lowercased() == "$upstream" { return .upstream }
        let prefix = "brokeredendpoint("
        guard text.lowercased().hasPrefix(prefix), text.hasSuffix(")") else {
            throw ParseError(description: "a route sink is $upstream or BrokeredEndpoint(\"/modules/{m}/inputs/{i}\")")
        }
        var inner = text.dropFirst(prefix.count).dropLast().trimmingCharacters(in: .whitespaces)
        guard inner.count >= 2, inner.first == "\"", inner.last == "\"" else {
            throw ParseError(description: "BrokeredEndpoint takes a quoted \"/modules/{m}/inputs/{i}\"")
        }
        inner = String(inner.dropFirst().dropLast())
        let parts = inner.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "modules", Self.isName(parts[2]), parts[3] == "inputs",
            Self.isName(parts[4])
        else {
            throw ParseError(
                description: "BrokeredEndpoint takes \"/modules/{m}/inputs/{i}\", not '\(inner.prefix(200))'"
            )
        }
        return .moduleInput(module: parts[2], input: parts[4])
    }

    /// A module, output or input name: 1 to 128 printable ASCII characters without `/`, `*`, `"` or spaces.
    private static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 128
            && text.utf8.allSatisfy {
                $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "*") && $0 != UInt8(ascii: "\"")
            }
    }

    /// Whether the route takes a message from `moduleId` (`nil`: the Edge device itself) sent to `output`.
    func matches(moduleId: String?, output: String?) -> Bool {
        switch self.source {
        case .all: return true
        case .allModules: return moduleId != nil
        case .module(let module): return moduleId == module
        case .anyOutput(let module): return moduleId == module && output != nil
        case .output(let module, let name): return moduleId == module && output == name
        }
    }

    /// edgeHub's default when a deployment names no route.
    static let defaultRoutes = [EdgeRoute(source: .all, sink: .upstream)]
}
