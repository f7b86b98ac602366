// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets, in their own package so the SDK's build never needs the sanitizers. See Fuzz/README.md.
let package = Package(
    name: "AzureIoTFuzz",
    dependencies: [.package(name: "AzureIoT", path: "../")],
    targets: [
        .executableTarget(
            name: "MQTTFuzzer",
            dependencies: [.product(name: "MQTTCodec", package: "AzureIoT")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "AMQPFuzzer",
            dependencies: [.product(name: "AMQPCodec", package: "AzureIoT")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "WebSocketFuzzer",
            dependencies: [.product(name: "WebSocketCodec", package: "AzureIoT")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
