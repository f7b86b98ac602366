// swift-tools-version:6.1
import PackageDescription

/// Benchmarks live in their own package so that users of the SDK never resolve or build them.
let package = Package(
    name: "AzureIoTBenchmarks",
    dependencies: [.package(name: "AzureIoT", path: "../")],
    targets: [
        .target(name: "BenchmarkSupport"),
        .executableTarget(
            name: "DPSBenchmark",
            dependencies: [
                .product(name: "DPSClient", package: "AzureIoT"), .product(name: "AzureIoTCore", package: "AzureIoT"),
            ]
        ),
        .executableTarget(
            name: "AMQPBenchmark",
            dependencies: [
                "BenchmarkSupport", .product(name: "HubAMQP", package: "AzureIoT"),
                .product(name: "AzureIoTCore", package: "AzureIoT"),
            ]
        ),
        .executableTarget(
            name: "MQTTBenchmark",
            dependencies: [
                "BenchmarkSupport", .product(name: "HubMQTT", package: "AzureIoT"),
                .product(name: "AzureIoTCore", package: "AzureIoT"),
            ]
        ),
        .executableTarget(
            name: "WebSocketMaskCheck",
            dependencies: [.product(name: "WebSocketCodec", package: "AzureIoT")]
        ),
        .executableTarget(
            name: "SASBenchmark",
            dependencies: [.product(name: "AzureIoTCore", package: "AzureIoT")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]
        ),
    ]
)
