// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Warren",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "AMQP", targets: ["AMQP"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        // rabbitmq-c (librabbitmq-dev), seen through a module map and a small shim header.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The AMQP 0-9-1 client: an async Swift API over rabbitmq-c, one I/O thread per connection.
        .target(
            name: "AMQP",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Throughput and latency of the AMQP layer beside a plain C loop (Scripts/bench-amqp.sh).
        .executableTarget(
            name: "AMQPBenchmark",
            dependencies: ["AMQP"]
        ),
        .testTarget(
            name: "AMQPTests",
            dependencies: ["AMQP"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
