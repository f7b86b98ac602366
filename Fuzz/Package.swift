// swift-tools-version:6.1
import PackageDescription

/// libFuzzer targets, in their own package so the SDK's build never needs the sanitizers. See Fuzz/README.md.
let package = Package(
    name: "AzureIoTFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../")],
    targets: [
        .executableTarget(
            name: "MQTTFuzzer",
            dependencies: [.product(name: "HubMQTT", package: "main")],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
