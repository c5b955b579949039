// swift-tools-version: 6.1
// Outpost: IoT telemetry ingestion. One executable (`outpost`), one module per job; see README.md
// ("Layout of the code") and ../shared/DESIGN.md for which module may import which.
import PackageDescription

/// Settings every Swift target shares: Swift 6 mode (strict concurrency) and explicit existentials.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

extension Target.Dependency {
    static let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
    static let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")
    static let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
    static let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
    static let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
    static let nioSSL = Target.Dependency.product(name: "NIOSSL", package: "swift-nio-ssl")
    static let yams = Target.Dependency.product(name: "Yams", package: "Yams")
    static let collections = Target.Dependency.product(name: "DequeModule", package: "swift-collections")
    static let histogram = Target.Dependency.product(name: "Histogram", package: "hdrhistogram-swift")
}

let package = Package(
    name: "Outpost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "outpost", targets: ["outpost"]),
        .library(name: "OutpostCore", targets: ["OutpostCore"]),
        .library(name: "OutpostLog", targets: ["OutpostLog"]),
        .library(name: "OutpostMQTT", targets: ["OutpostMQTT"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // Thin system-library shims: nothing but the C headers. Exactly one Swift module imports each.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMosquitto", path: "Sources/CMosquitto", providers: [.apt(["libmosquitto-dev"])]),

        // CRC-32C on the CPU's instruction (SSE4.2 / ARMv8 CRC) behind a runtime check; OutpostCore's only C.
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),

        // The one file system call OutpostLog needs that Glibc's Swift module hides (sync_file_range).
        .target(name: "CFileIO", path: "Sources/CFileIO"),

        // Point model, line-protocol/JSON/topic codecs, RecordBatch v2, CRC-32C, varints, murmur2, gzip.
        .target(name: "OutpostCore", dependencies: ["CZlib", "CCRC32C"], swiftSettings: swiftSettings),

        // Segmented partition log: segments, indexes, group commit, recovery, retention.
        .target(name: "OutpostLog", dependencies: ["OutpostCore", "CFileIO", .logging], swiftSettings: swiftSettings),

        // MQTT client over libmosquitto (the only importer of CMosquitto): `MQTTClient`.
        .target(name: "OutpostMQTT", dependencies: ["CMosquitto", .logging], swiftSettings: swiftSettings),

        // Kafka wire protocol: request/response codecs, server framing, client (producer, consumer, group member).
        .target(
            name: "OutpostKafka", dependencies: ["OutpostCore", .nioCore, .nioPosix, .nioSSL, .logging, .collections],
            swiftSettings: swiftSettings),

        // Operating a role: metrics registry and the /metrics + /healthz endpoint, signal handling.
        .target(
            name: "OutpostOperations",
            dependencies: [
                .logging, .metrics, .nioCore, .nioPosix, .nioHTTP1, .yams,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings),

        // Central broker: partitions over OutpostLog, Kafka protocol server, groups, idempotence.
        .target(
            name: "OutpostBroker",
            dependencies: ["OutpostCore", "OutpostLog", "OutpostKafka", "OutpostOperations", .nioCore, .nioPosix, .nioSSL, .logging, .metrics, .yams, .collections],
            swiftSettings: swiftSettings),

        // Edge gateway: MQTT/UDP/TCP/HTTP listeners, ingest pipeline into the local log, replicator.
        .target(
            name: "OutpostGateway",
            dependencies: [
                "OutpostCore", "OutpostLog", "OutpostKafka", "OutpostMQTT", "OutpostOperations",
                .nioCore, .nioPosix, .nioHTTP1, .logging, .metrics, .yams, .collections, .histogram,
            ],
            swiftSettings: swiftSettings),

        // Device-fleet simulator and end-to-end verifier.
        .target(
            name: "OutpostSimulator",
            dependencies: ["OutpostCore", "OutpostLog", "OutpostKafka", "OutpostMQTT", .nioCore, .nioPosix, .logging, .yams, .histogram],
            swiftSettings: swiftSettings),

        // Argument parsing and wiring only.
        .executableTarget(
            name: "outpost",
            dependencies: [
                "OutpostCore", "OutpostLog", "OutpostKafka", "OutpostGateway", "OutpostBroker", "OutpostSimulator", "OutpostOperations",
                .logging,
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "OutpostCoreTests", dependencies: ["OutpostCore"], swiftSettings: swiftSettings),
        // What the disk-full tests of several targets share (a small tmpfs); not part of the product.
        .target(name: "OutpostTestSupport", path: "Tests/OutpostTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "OutpostLogTests", dependencies: ["OutpostLog", "OutpostTestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "OutpostMQTTTests", dependencies: ["OutpostMQTT"], swiftSettings: swiftSettings),
        .testTarget(
            name: "OutpostOperationsTests", dependencies: ["OutpostOperations", .nioPosix, .metrics, .product(name: "Prometheus", package: "swift-prometheus")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "OutpostKafkaTests",
            dependencies: ["OutpostKafka", "OutpostCore", .nioCore, .nioPosix, .product(name: "NIOTestUtils", package: "swift-nio")],
            swiftSettings: swiftSettings),
        .testTarget(name: "OutpostBrokerTests", dependencies: ["OutpostBroker", "OutpostKafka", "OutpostLog", .nioCore, .nioPosix], swiftSettings: swiftSettings),
        .testTarget(
            name: "OutpostGatewayTests",
            dependencies: [
                "OutpostGateway", "OutpostLog", "OutpostCore", "OutpostTestSupport", .nioCore, .nioPosix, .metrics,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(name: "OutpostSimulatorTests", dependencies: ["OutpostSimulator", "OutpostLog", "OutpostCore"], swiftSettings: swiftSettings),
        // Multi-process and interop tests: real clients, real processes, the built `outpost` binary.
        .testTarget(
            name: "SystemTests", dependencies: ["OutpostCore", "OutpostLog", "outpost"], swiftSettings: swiftSettings),
    ]
)
