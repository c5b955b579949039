// swift-tools-version: 6.1
// Benchmarks live in their own package so `swift build` and CI of the product stay fast.
// Run: swift package --package-path Benchmarks benchmark   (see docs/BENCHMARKS.md)
import PackageDescription

let package = Package(
    name: "OutpostBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Outpost", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // zlib called directly, the reference the batch benchmarks are measured against.
        .systemLibrary(name: "ZlibReference", path: "Sources/ZlibReference"),
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "OutpostCore", package: "Outpost"),
                "ZlibReference",
            ],
            path: "Benchmarks/CoreBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // End-to-end log benchmark with its own reference (bare write+fdatasync loop); see docs/BENCHMARKS.md.
        .executableTarget(
            name: "outpost-log-bench",
            dependencies: [
                .product(name: "OutpostCore", package: "Outpost"),
                .product(name: "OutpostLog", package: "Outpost"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            path: "Benchmarks/LogBench",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // Cheap load generator for the gateway benchmarks (Benchmarks/gateway_bench.py).
        .executableTarget(
            name: "outpost-load",
            dependencies: [.product(name: "OutpostMQTT", package: "Outpost")],
            path: "Benchmarks/LoadGenerator",
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
