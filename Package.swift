// swift-tools-version: 6.1
import PackageDescription

// Linux only, and said so by declaring no Apple platform: the AMQP client's I/O thread waits on
// an eventfd, and nothing is built or tested on macOS (CONTRIBUTING.md).
let package = Package(
    name: "Warren",
    products: [
        .library(name: "AMQP", targets: ["AMQP"]),
        .library(name: "WarrenStore", targets: ["WarrenStore"]),
        .library(name: "Warren", targets: ["Warren"]),
        .library(name: "WarrenContract", targets: ["WarrenContract"]),
        .library(name: "WarrenKernel", targets: ["WarrenKernel"]),
        .library(name: "WarrenTesting", targets: ["WarrenTesting"]),
        .executable(name: "warren", targets: ["warren"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
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
        // What the test targets share: processes, private brokers, ports, deadlines.
        .target(
            name: "WarrenTestSupport",
            path: "Tests/WarrenTestSupport"
        ),
        .testTarget(
            name: "AMQPTests",
            dependencies: ["AMQP", "WarrenTestSupport"]
        ),
        // The message contract every part shares, with no dependency: the JSON value, the promise
        // record's wire shape, the message kinds and headers, the topology's names and
        // arguments, durations.
        .target(name: "WarrenContract"),
        // Signed approval links (HMAC-SHA256, swift-crypto): the SDK and the CLI sign, the
        // orchestrator verifies.
        .target(
            name: "WarrenLinks",
            dependencies: ["WarrenContract", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // Declaring that topology on a broker (the orchestrator and the workers share it).
        .target(
            name: "WarrenAMQP",
            dependencies: ["AMQP", "WarrenContract", .product(name: "Logging", package: "swift-log")]
        ),
        // The durable promise store: promises, tasks, timers and the outbox in one SQLite file.
        // Knows nothing of AMQP.
        .target(
            name: "WarrenStore",
            dependencies: ["WarrenContract", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // The kernel: every operation of the orchestrator as a function of a command, a store
        // transaction and the time to the messages it causes. Knows nothing of AMQP or HTTP, so
        // that it is tested with the in-memory store, without broker or disk.
        .target(
            name: "WarrenKernel",
            dependencies: ["WarrenStore", "WarrenContract"]
        ),
        // The store on PostgreSQL (postgres-nio): `warren serve --db postgres://…`.
        .target(
            name: "WarrenStorePostgres",
            dependencies: [
                "WarrenStore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "WarrenKernelTests",
            dependencies: ["WarrenKernel", "WarrenStore", "WarrenContract"]
        ),
        // The orchestrator: joins the AMQP layer and the store; consumes commands in batches,
        // applies each batch in one transaction, publishes through the outbox; serves the HTTP
        // API and the approval page.
        .target(
            name: "WarrenOrchestrator",
            dependencies: [
                "AMQP", "WarrenStore", "WarrenStorePostgres", "WarrenKernel", "WarrenContract", "WarrenLinks", "WarrenAMQP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The `warren` command: `warren serve` runs the orchestrator.
        .executableTarget(
            name: "warren",
            dependencies: [
                "AMQP", "WarrenOrchestrator", "WarrenStore", "WarrenContract", "WarrenLinks",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The worker SDK and client: workflows as async functions, durable steps and promises.
        .target(
            name: "Warren",
            dependencies: [
                "AMQP", "WarrenContract", "WarrenLinks", "WarrenAMQP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // The test kit a user's tests import: registered workflows run in-process on the kernel
        // and the in-memory store, with a virtual clock; no broker.
        .target(
            name: "WarrenTesting",
            dependencies: ["Warren", "WarrenKernel", "WarrenStore", .product(name: "Logging", package: "swift-log")]
        ),
        // The SDK's replay core driven by a recorded history, with no broker; the test kit.
        .testTarget(
            name: "WarrenTests",
            dependencies: ["Warren", "WarrenTesting", .product(name: "Logging", package: "swift-log")]
        ),
        // A worker with the human-in-the-loop workflow, for the process-level tests.
        // The examples (Examples/): the seed article's human-in-the-loop worker and gateway, and
        // a refund that needs a manager's approval within a deadline.
        .target(name: "HumanInTheLoopWorkflow", dependencies: ["Warren"], path: "Examples/HumanInTheLoop/Workflow"),
        .executableTarget(
            name: "hitl-worker",
            dependencies: ["Warren", "HumanInTheLoopWorkflow", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Examples/HumanInTheLoop/Worker"
        ),
        .executableTarget(
            name: "hitl-gateway",
            dependencies: ["Warren", .product(name: "Hummingbird", package: "hummingbird")],
            path: "Examples/HumanInTheLoop/Gateway"
        ),
        .target(name: "RefundWorkflow", dependencies: ["Warren"], path: "Examples/RefundApproval/Workflow"),
        .executableTarget(
            name: "refund-approval",
            dependencies: ["Warren", "RefundWorkflow", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Examples/RefundApproval/App"
        ),
        // The examples' workflows, tested with the test kit: week-long waits in milliseconds.
        .testTarget(
            name: "ExamplesTests",
            dependencies: ["WarrenTesting", "Warren", "RefundWorkflow", "HumanInTheLoopWorkflow"]
        ),
        .executableTarget(
            name: "WarrenTestWorker",
            dependencies: [
                "Warren",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/WarrenTestWorker"
        ),
        // The chaos suite's driver and worker (Scripts/chaos.sh).
        .executableTarget(
            name: "WarrenChaos",
            dependencies: [
                "Warren", "AMQP", "WarrenTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/WarrenChaos"
        ),
        // Workflows/s and resume latency end to end (Scripts/bench-workflows.sh).
        .executableTarget(
            name: "WorkflowBenchmark",
            dependencies: [
                "Warren",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // Promises/s and resolve-to-event latency through `warren serve` (Scripts/bench-orchestrator.sh).
        .executableTarget(
            name: "OrchestratorBenchmark",
            dependencies: ["AMQP"]
        ),
        .testTarget(
            name: "WarrenOrchestratorTests",
            dependencies: ["WarrenOrchestrator", "AMQP", "WarrenStore", "WarrenStorePostgres", "Warren", "WarrenContract", "WarrenLinks", "WarrenTestSupport", "WarrenTesting"]
        ),
        // Store throughput and size (Scripts/bench-store.sh), and the writer the crash test kills.
        .executableTarget(
            name: "StoreBenchmark",
            dependencies: ["WarrenStore"]
        ),
        .testTarget(
            name: "WarrenStoreTests",
            dependencies: [
                "WarrenStore", "WarrenStorePostgres",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
