// swift-tools-version: 6.1
// Outpost: IoT telemetry ingestion. One executable (`outpost`), one module per job; see README.md
// ("Layout of the code") and ../shared/DESIGN.md for which module may import which.
import PackageDescription

/// Settings every Swift target shares: Swift 6 mode (strict concurrency) and warnings that stay visible.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Outpost",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "outpost", targets: ["outpost"]),
        .library(name: "OutpostCore", targets: ["OutpostCore"]),
        .library(name: "OutpostLog", targets: ["OutpostLog"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Thin system-library shims: nothing but the C headers. Exactly one Swift module imports each.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),

        // Point model, line-protocol/JSON/topic codecs, RecordBatch v2, CRC-32C, varints, murmur2, gzip.
        .target(name: "OutpostCore", dependencies: ["CZlib"], swiftSettings: swiftSettings),

        // Segmented partition log: segments, indexes, group commit, recovery, retention.
        .target(
            name: "OutpostLog",
            dependencies: ["OutpostCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),

        // Argument parsing and wiring only.
        .executableTarget(
            name: "outpost",
            dependencies: [
                "OutpostCore",
                "OutpostLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(name: "OutpostCoreTests", dependencies: ["OutpostCore"], swiftSettings: swiftSettings),
        .testTarget(name: "OutpostLogTests", dependencies: ["OutpostLog"], swiftSettings: swiftSettings),
        // Multi-process and interop tests: real clients, real processes, the built `outpost` binary.
        .testTarget(
            name: "SystemTests", dependencies: ["OutpostCore", "OutpostLog", "outpost"], swiftSettings: swiftSettings),
    ]
)
