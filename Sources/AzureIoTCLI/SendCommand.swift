import ArgumentParser
import AzureIoTCore
import Foundation
import HubAMQP
import HubMQTT

/// `azure-iot send`: sends telemetry over MQTT.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send device-to-cloud telemetry (MQTT, QoS 1); progress on stderr."
    )

    @OptionGroup var connection: HubConnectionOptions

    @Option(help: "$.ct, e.g. application/json.")
    var contentType: String?

    @Option(help: "$.ce, e.g. utf-8.")
    var contentEncoding: String?

    @Option(help: "Send to this output of an IoT Edge module ($.on); edgeHub's routes take it from there.")
    var output: String?

    @Option(name: .customLong("property"), help: "An application property k=v (repeatable).")
    var properties: [String] = []

    @Option(parsing: .unconditional, help: "How many messages to send, 1 to 1000000000.")
    var count: Int = 1

    @Option(parsing: .unconditional, help: "Seconds between messages, 0 to 86400.")
    var interval: Double = 0

    @Option(
        parsing: .unconditional,
        help: "Seconds each message may wait for its acknowledgement, 0.1 to 86400 (MQTT; default 60)."
    )
    var timeout: Double = 60

    @Argument(help: "The message body.")
    var message: String

    func validate() throws {
        try self.connection.validateProtocol()
        guard (1...1_000_000_000).contains(self.count) else {
            throw ValidationError("--count must be 1...1000000000, got \(self.count)")
        }
        guard self.timeout.isFinite, (0.1...86_400).contains(self.timeout) else {
            throw ValidationError("--timeout must be 0.1...86400 seconds, got \(self.timeout)")
        }
        guard self.interval.isFinite, (0...86_400).contains(self.interval) else {
            throw ValidationError("--interval must be 0...86400 seconds, got \(self.interval)")
        }
        for property in self.properties where !property.contains("=") {
            throw ValidationError("--property takes k=v, got '\(property)'")
        }
    }

    func run() async throws {
        let pairs = self.properties.map { property -> (String, String) in
            let parts = property.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), String(parts[1]))
        }
        let clock = ContinuousClock()
        let start = clock.now
        if self.connection.usesAMQP {
            try await self.sendOverAMQP(pairs, clock: clock, start: start)
            return
        }
        let configuration = try await self.connection.configuration()
        try await HubMQTTClient.withConnection(configuration: configuration) { client in
            for index in 1...self.count {
                var message = TelemetryMessage(
                    body: Array(self.message.utf8),
                    contentType: self.contentType,
                    contentEncoding: self.contentEncoding,
                    outputName: self.output
                )
                message.properties = pairs
                try await client.send(message, timeout: .seconds(self.timeout))
                FileHandle.standardError.write(Data("sent \(index)/\(self.count) (+\(clock.now - start))\n".utf8))
                if self.interval > 0 && index < self.count {
                    try await Task.sleep(for: .milliseconds(Int(self.interval * 1000)))
                }
            }
        }
    }

    private func sendOverAMQP(_ pairs: [(String, String)], clock: ContinuousClock, start: ContinuousClock.Instant)
        async throws
    {
        let client = try HubAMQPClient(configuration: try self.connection.amqpConfiguration())
        try await client.connect()
        do {
            for index in 1...self.count {
                var message = AMQPMessage(data: Array(self.message.utf8))
                message.contentType = self.contentType
                message.contentEncoding = self.contentEncoding
                message.applicationProperties = pairs.map { ($0.0, .string($0.1)) }
                if let output = self.output {
                    message.applicationProperties.append(("iothub-outputname", .string(output)))
                }
                try await client.send(message)
                FileHandle.standardError.write(Data("sent \(index)/\(self.count) (+\(clock.now - start))\n".utf8))
                if self.interval > 0 && index < self.count {
                    try await Task.sleep(for: .milliseconds(Int(self.interval * 1000)))
                }
            }
        } catch {
            await client.close()
            throw error
        }
        await client.close()
    }
}
