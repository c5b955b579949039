import Foundation
import Testing

/// Locations and process helpers for multi-process and interop tests.
enum TestEnvironment {
    /// The package root: this file is <root>/Tests/SystemTests/Support.swift.
    static let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `../shared` beside the checkout (CI puts it there).
    static let sharedDirectory: URL = packageRoot.deletingLastPathComponent().appendingPathComponent("shared")

    static let fixtures: URL = packageRoot.appendingPathComponent("Tests/Fixtures")

    /// The `outpost` binary SwiftPM built for this test run (same configuration as the tests).
    static var outpostBinary: URL {
        if let override = ProcessInfo.processInfo.environment["OUTPOST_BIN"] {
            return URL(fileURLWithPath: override)
        }
        // Tests run from <build>/<config>/OutpostPackageTests.xctest; the binary sits beside it.
        let candidates = [
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("outpost"),
            Bundle.main.bundleURL.appendingPathComponent("outpost"),
            packageRoot.appendingPathComponent(".build/debug/outpost"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[2]
    }

    static func temporaryDirectory(_ name: String = #function) throws -> URL {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("outpost-test-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct ProcessResult {
    var status: Int32
    var stdout: Data
    var stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs a program to completion, feeding `stdin`, and returns its status and output.
func runProcess(_ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String]? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    let outPipe = Pipe()
    let errPipe = Pipe()
    let inPipe = Pipe()
    process.standardOutput = outPipe
    process.standardError = errPipe
    process.standardInput = inPipe
    try process.run()
    // Drain both pipes concurrently so a chatty child cannot block on a full pipe.
    let group = DispatchGroup()
    nonisolated(unsafe) var out = Data()
    nonisolated(unsafe) var err = Data()
    group.enter()
    DispatchQueue.global().async {
        out = outPipe.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    group.enter()
    DispatchQueue.global().async {
        err = errPipe.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    if let stdin { inPipe.fileHandleForWriting.write(stdin) }
    try inPipe.fileHandleForWriting.close()
    process.waitUntilExit()
    group.wait()
    return ProcessResult(status: process.terminationStatus, stdout: out, stderr: String(decoding: err, as: UTF8.self))
}

/// Path of an executable on PATH, or nil.
func which(_ name: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// python3, failing the test with a plain message when it is missing.
func python3() throws -> String {
    guard let python = which("python3") else {
        Issue.record("python3 is not on PATH; scripts/test installs the interop dependencies")
        throw CancellationError()
    }
    return python
}

/// Deterministic generator for tests: one seed reproduces a run.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
