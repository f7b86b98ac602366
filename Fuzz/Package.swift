// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets, in their own package so the SDK's build never needs the sanitizers. See Fuzz/README.md.
let package = Package(
    name: "AzureIoTFuzz",
    dependencies: [.package(name: "AzureIoT", path: "../")],
    targets: [
        // libFuzzer's driver, shared by the fuzzers.
        .target(name: "FuzzSupport"),
        .executableTarget(
            name: "MQTTFuzzer",
            dependencies: ["FuzzSupport", .product(name: "MQTTCodec", package: "AzureIoT")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "AMQPFuzzer",
            dependencies: ["FuzzSupport", .product(name: "AMQPCodec", package: "AzureIoT")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
        .executableTarget(
            name: "WebSocketFuzzer",
            dependencies: ["FuzzSupport", .product(name: "WebSocketCodec", package: "AzureIoT")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
