// swift-tools-version:6.1
import Foundation
import PackageDescription

/// `make test` (and so CI) sets AZURE_IOT_WARNINGS_AS_ERRORS=1: every warning in this package's own targets fails
/// the build there, while users building the package with a newer compiler are never broken by a new warning.
let warningsAsErrors = ProcessInfo.processInfo.environment["AZURE_IOT_WARNINGS_AS_ERRORS"] == "1"

/// One settings array for every Swift target, test targets included.
let swiftSettings: [SwiftSetting] =
    [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("InternalImportsByDefault"),
    ] + (warningsAsErrors ? [.unsafeFlags(["-warnings-as-errors"])] : [])

/// The C shims compile with every warning on, and as errors under `make test`.
let cSettings: [CSetting] = [.unsafeFlags(["-Wall", "-Wextra"] + (warningsAsErrors ? ["-Werror"] : []))]

let package = Package(
    name: "AzureIoT",
    products: [
        .library(name: "AzureIoTCore", targets: ["AzureIoTCore"]),
        .library(name: "DPSClient", targets: ["DPSClient"]),
        // HTTP and SOCKS proxies for the MQTT and AMQP clients, through libcurl (only this product links it).
        .library(name: "AzureIoTProxy", targets: ["AzureIoTProxy"]),
        .library(name: "HubMQTT", targets: ["HubMQTT"]),
        .library(name: "HubAMQP", targets: ["HubAMQP"]),
        .library(name: "AzureIoTDevice", targets: ["AzureIoTDevice"]),
        // Device file upload (blob SAS from the hub, blocks to storage, notification), through libcurl.
        .library(name: "HubFileUpload", targets: ["HubFileUpload"]),
        // IoT Edge modules: the environment, the workload API (over its unix socket, through libcurl) and tokens it signs.
        .library(name: "AzureIoTEdge", targets: ["AzureIoTEdge"]),
        // The wire codecs alone (no I/O, no client): for harnesses that want protocol edge cases.
        .library(name: "MQTTCodec", targets: ["MQTTCodec"]),
        .library(name: "AMQPCodec", targets: ["AMQPCodec"]),
        .library(name: "WebSocketCodec", targets: ["WebSocketCodec"]),
        .library(name: "AzureIoTEmulator", targets: ["AzureIoTEmulator"]),
        // Test infrastructure: a certificate authority in memory and a TLS server socket. Devices never need it.
        .library(name: "AzureIoTTesting", targets: ["AzureIoTTesting"]),
        .executable(name: "azure-iot", targets: ["AzureIoTCLI"]),
        .executable(name: "azure-iot-netfuzz", targets: ["NetworkFuzzer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
    ],
    targets: [
        // MARK: - C interop (nothing public passes through these)
        .systemLibrary(
            name: "CAzureIoTOpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .systemLibrary(
            name: "CAzureIoTCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"]), .brew(["curl"])]
        ),
        // The emulator's durable state (`--data-dir`); no SDK module links it.
        .systemLibrary(
            name: "CAzureIoTSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        // OpenSSL, epoll, HMAC and certificate helpers: everything Core needs, and nothing of libcurl.
        .target(name: "CAzureIoTShims", dependencies: ["CAzureIoTOpenSSL"], cSettings: cSettings),
        // libcurl's variadic calls, for the modules that speak HTTP (DPSClient); MQTT and AMQP never link libcurl.
        .target(name: "CAzureIoTCurlShims", dependencies: ["CAzureIoTCurl"], cSettings: cSettings),
        .target(name: "CAzureIoTByteScan", cSettings: cSettings),

        // MARK: - Library modules
        .target(
            name: "AzureIoTCore",
            dependencies: [
                "CAzureIoTOpenSSL",
                "CAzureIoTShims",
                "WebSocketCodec",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "DPSClient",
            dependencies: [
                "MQTTCodec",
                "AMQPCodec",
                "HubAMQP",
                "AzureIoTProxy",
                "AzureIoTCore",
                "CAzureIoTCurl",
                "CAzureIoTCurlShims",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HubFileUpload",
            dependencies: ["AzureIoTCore", "DPSClient"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AzureIoTEdge",
            dependencies: ["AzureIoTCore", "AzureIoTDevice", "DPSClient"],
            swiftSettings: swiftSettings
        ),
        // Pure codecs over bounds-checked byte cursors: no I/O, no dependency on the rest of the SDK.
        .target(name: "MQTTCodec", dependencies: ["CAzureIoTByteScan"], swiftSettings: swiftSettings),
        .target(name: "AMQPCodec", swiftSettings: swiftSettings),
        .target(name: "WebSocketCodec", swiftSettings: swiftSettings),
        .target(
            name: "AzureIoTProxy",
            dependencies: ["AzureIoTCore", "CAzureIoTCurl", "CAzureIoTCurlShims"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HubMQTT",
            dependencies: [
                "AzureIoTCore", "MQTTCodec", "CAzureIoTByteScan", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "HubAMQP",
            dependencies: [
                "AzureIoTCore", "AMQPCodec", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AzureIoTDevice",
            dependencies: [
                "AzureIoTCore", "HubMQTT", "HubAMQP", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "AzureIoTTesting",
            dependencies: [
                "AzureIoTCore", "CAzureIoTOpenSSL", "CAzureIoTShims", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "AzureIoTEmulator",
            dependencies: [
                "AzureIoTCore", "AzureIoTTesting", "HubMQTT", "HubAMQP", "CAzureIoTSQLite",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - Command line
        .executableTarget(
            name: "AzureIoTCLI",
            dependencies: [
                "AzureIoTCore",
                "DPSClient",
                "HubMQTT",
                "HubAMQP",
                "HubFileUpload",
                "AzureIoTEdge",
                "AzureIoTEmulator",
                "AzureIoTTesting",
                "AzureIoTProxy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        // MARK: - Tools
        .executableTarget(
            name: "NetworkFuzzer",
            dependencies: [
                "AzureIoTCore",
                "HubMQTT",
                "HubAMQP",
                "WebSocketCodec",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tools/NetworkFuzzer",
            swiftSettings: swiftSettings
        ),

        // Imports the device-side modules only; scripts/check-link.sh checks that it does not need libcurl.
        .executableTarget(
            name: "LinkCheck",
            dependencies: ["AzureIoTCore", "HubMQTT", "HubAMQP", "AzureIoTDevice"],
            path: "Tools/LinkCheck",
            swiftSettings: swiftSettings
        ),

        // MARK: - Tests
        .target(
            name: "AzureIoTTestSupport",
            dependencies: ["AzureIoTCore"],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AzureIoTCoreTests",
            dependencies: ["AzureIoTCore", "AzureIoTTesting", "AzureIoTTestSupport"],
            resources: [.copy("Vectors")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DPSClientTests",
            dependencies: ["DPSClient", "MQTTCodec", "AzureIoTTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HubMQTTTests",
            dependencies: ["HubMQTT", "AzureIoTTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HubAMQPTests",
            dependencies: ["HubAMQP", "AzureIoTTesting", "AzureIoTTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AzureIoTEmulatorTests",
            dependencies: [
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                "AzureIoTEmulator", "AzureIoTTesting", "AzureIoTProxy", "DPSClient", "HubMQTT", "HubAMQP",
                "WebSocketCodec", "HubFileUpload",
                "AzureIoTDevice", "AzureIoTEdge",
                "AzureIoTTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "DocumentationExamplesTests",
            dependencies: [
                "AzureIoTEmulator", "AzureIoTTesting", "AzureIoTProxy", "DPSClient", "HubMQTT", "HubAMQP",
                "AzureIoTDevice", "HubFileUpload", "AzureIoTEdge",
                "AzureIoTTestSupport",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebSocketCodecTests",
            dependencies: ["WebSocketCodec", "AzureIoTTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "AzureIoTCLITests",
            dependencies: ["AzureIoTCLI", "AzureIoTTestSupport"],
            resources: [.copy("Vectors")],
            swiftSettings: swiftSettings
        ),
    ]
)
