import AzureIoTCore
import AzureIoTEmulator
import AzureIoTTestSupport
import Foundation

/// A recipe of the write-ups (`../shared/seed/`) kept in `Tests/Peers/write-ups/`, byte for byte as the text prints
/// it: curly quotes, no-break spaces and en dashes included. `WriteUpRecipeTests` checks every excerpt against the
/// text, so a test cannot quietly adapt a recipe.
struct WriteUpExcerpt {
    let name: String
    /// The excerpt as printed.
    let printed: String

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The write-ups, beside the repository as CI lays them out.
    static let seedPath = Self.repositoryRoot.deletingLastPathComponent().appendingPathComponent(
        "shared/seed/000_ef56391cf5bafbd0.txt"
    ).path

    init(_ name: String) throws {
        self.name = name
        let url = URL(fileURLWithPath: PeerProcess.peerScript("write-ups/\(name)"))
        self.printed = try String(contentsOf: url, encoding: .utf8)
    }

    /// The excerpt as a reader has it after pasting it from the blog and undoing the blog's typography, the one change
    /// besides filling in placeholders: no-break spaces become spaces, curly quotes straight ones, and an en dash
    /// before an option the dashes it stood for (`–decode` → `--decode`, `–t` → `-t`).
    var pasted: String {
        let scalars = Array(self.printed.unicodeScalars)
        var out = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            switch scalars[index] {
            case "\u{00A0}": out.append(" ")
            case "\u{2018}", "\u{2019}": out.append("'")
            case "\u{201C}", "\u{201D}": out.append("\"")
            case "\u{2013}":
                var end = index + 1
                while end < scalars.count, scalars[end].properties.isAlphabetic { end += 1 }
                out.append(contentsOf: end - index - 1 > 1 ? "--".unicodeScalars : "-".unicodeScalars)
            default: out.append(scalars[index])
            }
            index += 1
        }
        return String(out)
    }

    /// ``pasted`` with each placeholder replaced, in order.
    func pasted(_ substitutions: [(String, String)]) -> String {
        substitutions.reduce(self.pasted) { $0.replacingOccurrences(of: $1.0, with: $1.1) }
    }

    /// The lines of a settings excerpt (quoted from prose rather than one block), pasted.
    var lines: [String] { self.pasted.split(separator: "\n").map(String.init) }
}

/// Runs recipe commands as a reader would: in a shell, in a working folder of their own.
enum RecipeShell {
    /// A new working folder.
    static func folder() throws -> String {
        let path = NSTemporaryDirectory() + "write-up-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Runs `script` with bash in `folder`; stdout and stderr apart (curl's progress meter goes to stderr).
    static func run(
        _ script: String,
        in folder: String,
        environment extra: [String: String] = [:],
        timeout: Duration = .seconds(60)
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        var environment = ProcessInfo.processInfo.environment
        for (name, value) in extra { environment[name] = value }
        return try await PeerProcess.capture(
            "/bin/bash",
            ["-c", "cd '\(folder)' && \(script)"],
            environment: environment,
            timeout: timeout
        )
    }

    /// A `curl -i` answer: the last response's status line and JSON body (after any redirect `-L` followed).
    static func httpResponse(_ output: String) -> (status: Int, body: JSONValue?) {
        let sections = output.components(separatedBy: "\r\n\r\n")
        let statusLine = sections.dropLast().last?.split(separator: "\r\n").first ?? ""
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        return (status, (try? JSONValue(parsing: Array((sections.last ?? "").utf8))))
    }
}
