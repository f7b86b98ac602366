import ArgumentParser
import AzureIoTCore
import Foundation
import HubMQTT

/// `azure-iot send`: sends telemetry over MQTT.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send device-to-cloud telemetry (MQTT, QoS 1); progress on stderr."
    )

    @OptionGroup var connection: HubConnectionOptions

    @Option(help: "The protocol: mqtt (amqp arrives with the AMQP client).")
    var `protocol`: String = "mqtt"

    @Option(help: "$.ct, e.g. application/json.")
    var contentType: String?

    @Option(help: "$.ce, e.g. utf-8.")
    var contentEncoding: String?

    @Option(name: .customLong("property"), help: "An application property k=v (repeatable).")
    var properties: [String] = []

    @Option(help: "How many messages to send.")
    var count: Int = 1

    @Option(help: "Seconds between messages.")
    var interval: Double = 0

    @Argument(help: "The message body.")
    var message: String

    func validate() throws {
        guard self.protocol == "mqtt" else { throw ValidationError("only --protocol mqtt is available in this version") }
        guard self.count >= 1 else { throw ValidationError("--count must be at least 1") }
        for property in self.properties where !property.contains("=") {
            throw ValidationError("--property takes k=v, got '\(property)'")
        }
    }

    func run() async throws {
        let pairs = self.properties.map { property -> (String, String) in
            let parts = property.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), String(parts[1]))
        }
        let configuration = try self.connection.configuration()
        let clock = ContinuousClock()
        let start = clock.now
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            for index in 1...self.count {
                var message = TelemetryMessage(body: Array(self.message.utf8), contentType: self.contentType, contentEncoding: self.contentEncoding)
                message.properties = pairs
                try await client.send(message)
                FileHandle.standardError.write(Data("sent \(index)/\(self.count) (+\(clock.now - start))\n".utf8))
                if self.interval > 0 && index < self.count { try await Task.sleep(for: .milliseconds(Int(self.interval * 1000))) }
            }
        }
    }
}
