// swift-tools-version:6.1
import PackageDescription

/// Benchmarks live in their own package so that users of the SDK never resolve or build them.
let package = Package(
    name: "AzureIoTBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: "../")],
    targets: [
        .target(name: "BenchmarkSupport"),
        .executableTarget(
            name: "DPSBenchmark",
            dependencies: [.product(name: "DPSClient", package: "main"), .product(name: "AzureIoTCore", package: "main")]
        ),
        .executableTarget(
            name: "AMQPBenchmark",
            dependencies: ["BenchmarkSupport", .product(name: "HubAMQP", package: "main"), .product(name: "AzureIoTCore", package: "main")]
        ),
        .executableTarget(
            name: "MQTTBenchmark",
            dependencies: ["BenchmarkSupport", .product(name: "HubMQTT", package: "main"), .product(name: "AzureIoTCore", package: "main")]
        ),
        .executableTarget(
            name: "SASBenchmark",
            dependencies: [.product(name: "AzureIoTCore", package: "main")],
            swiftSettings: [.unsafeFlags(["-Ounchecked"])]
        ),
    ]
)
