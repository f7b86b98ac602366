import ArgumentParser
import AzureIoTCore
import Foundation
import HubAMQP
import HubMQTT

/// `azure-iot listen`: prints C2D messages, desired patches and method calls; answers methods.
struct ListenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Print cloud-to-device messages, desired-property patches and direct-method calls (MQTT)."
    )

    @OptionGroup var connection: HubConnectionOptions

    @Option(help: "The status to answer direct methods with.")
    var methodStatus: Int = 200

    @Option(help: "The JSON payload to answer direct methods with.")
    var methodResponse: String = "{}"

    @Option(
        parsing: .unconditional,
        help: "Stop after this many seconds, up to 31536000 (default: run until interrupted)."
    )
    var duration: Double?

    func validate() throws {
        try self.connection.validateProtocol()
        if let duration, !(duration.isFinite && duration > 0 && duration <= 31_536_000) {
            throw ValidationError("--duration must be more than 0 and at most 31536000 seconds, got \(duration)")
        }
    }

    func run() async throws {
        if self.connection.usesAMQP {
            try await self.listenOverAMQP()
            return
        }
        let client = try HubMQTTClient(configuration: try await self.connection.configuration())
        // Everything below is read, so the first connection subscribes to all of it.
        try await client.subscribe(to: Set(HubMQTTClient.Inbound.allCases))
        try await client.connect()
        emit("listening as \(client.configuration.identity.clientId)")
        let status = self.methodStatus
        let response = Array(self.methodResponse.utf8)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for await message in client.cloudToDeviceMessages {
                    let system: [(key: String, value: String?)] = [
                        ("$.mid", message.messageId), ("$.cid", message.correlationId), ("$.uid", message.userId),
                        ("$.ct", message.contentType), ("$.ce", message.contentEncoding),
                        ("$.exp", message.expiryTime), ("$.ctime", message.creationTime),
                    ]
                    let properties = (system.filter { $0.value != nil } + message.applicationProperties)
                        .map { "\($0.key)=\($0.value ?? "")" }.joined(separator: " ")
                    let kind = message.inputName.map { "input \($0)" } ?? "c2d"
                    emit("\(kind): \(String(decoding: message.body, as: UTF8.self)) [\(properties)]")
                }
            }
            group.addTask {
                for await patch in client.desiredPropertyPatches {
                    emit(
                        "desired (version \(patch.version.map(String.init) ?? "?")): \(String(decoding: patch.json, as: UTF8.self))"
                    )
                }
            }
            group.addTask {
                for await call in client.methodRequests {
                    emit("method: \(call.name) \(String(decoding: call.payload, as: UTF8.self)) -> \(status)")
                    try await call.respond(status: status, payload: response)
                }
            }
            if let duration = self.duration {
                try await Task.sleep(for: .milliseconds(Int(duration * 1000)))
                await client.disconnect()
            }
            try await group.waitForAll()
        }
    }

    /// AMQP carries C2D here (twin and methods over AMQP are not in this client yet): print and complete each.
    private func listenOverAMQP() async throws {
        let configuration = try self.connection.amqpConfiguration()
        let client = try HubAMQPClient(configuration: configuration)
        try await client.connect()
        emit("listening as \(configuration.deviceId) (amqp)")
        let reader = Task {
            for await delivery in client.cloudToDeviceMessages {
                let properties = delivery.message.applicationProperties.map { "\($0.0)=\($0.1.text ?? "\($0.1)")" }
                    .joined(separator: " ")
                emit("c2d: \(String(decoding: delivery.message.data ?? [], as: UTF8.self)) [\(properties)]")
                try? await delivery.complete()
            }
        }
        if let duration = self.duration {
            try await Task.sleep(for: .milliseconds(Int(duration * 1000)))
            await client.close()
        }
        await reader.value
    }
}
