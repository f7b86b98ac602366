import ArgumentParser
import AzureIoTCore
import AzureIoTEdge
import AzureIoTEmulator
import DPSClient
import Foundation
import HubAMQP
import HubFileUpload
import HubMQTT

/// `azure-iot`: the SDK's command-line tool.
struct AzureIoTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "azure-iot",
        abstract: "Azure IoT Hub and Device Provisioning Service tools built on AzureIoT for Swift.",
        subcommands: [
            SASCommand.self, DeriveKeyCommand.self, ProvisionCommand.self, SendCommand.self, ListenCommand.self,
            UploadCommand.self, ServiceCommand.self, EmulatorCommand.self, DemoCommand.self,
        ]
    )
}

/// Entry point: runs the command, and on bad input prints exactly one line on stderr and exits non-zero.
@main
enum Main {
    static func main() async {
        do {
            var command = try AzureIoTCommand.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as AzureIoTError {
            fail("\(error.message)", code: 1)
        } catch let error as ProvisioningError {
            fail("\(error)", code: 2)
        } catch let error as HubMQTTError {
            fail("\(error)", code: 3)
        } catch let error as HubAMQPError {
            fail("\(error)", code: 4)
        } catch let error as EmulatorError {
            fail(error.message, code: 5)
        } catch let error as ServiceRefusal {
            fail(error.description, code: 6)
        } catch let error as FileUploadError {
            fail(error.description, code: 7)
        } catch let error as EdgeError {
            fail(error.description, code: 8)
        } catch {
            let exitCode = AzureIoTCommand.exitCode(for: error)
            if exitCode == .success {
                AzureIoTCommand.exit(withError: error)
            }
            let message =
                AzureIoTCommand.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            fail(
                message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message,
                code: exitCode.rawValue == 0 ? 1 : exitCode.rawValue
            )
        }
    }

    static func fail(_ message: String, code: Int32) -> Never {
        FileHandle.standardError.write(Data("azure-iot: error: \(message)\n".utf8))
        exit(code)
    }
}

/// Writes one line to stdout at once (unbuffered, so that a reading pipe sees it while the command runs).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
