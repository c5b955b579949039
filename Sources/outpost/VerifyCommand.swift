import ArgumentParser
import Foundation
import OutpostSimulator

/// `outpost verify`: did everything the simulator sent arrive, once, in order?
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a topic against a simulation manifest: missing, duplicated and out-of-order sequence numbers.",
        discussion: """
            Reads the topic from a log directory (--log DATA) and compares every device's `seq` values with
            what the manifest says was sent and acknowledged. Exit status 0 when no acknowledged send is
            missing and no sequence number appears twice (--require-all-sent: no sent point may be missing
            either, for paths without acknowledgements such as TCP); 1 otherwise; 2 when the inputs cannot be read.
            """)

    @Option(help: "The manifest written by `outpost simulate --manifest`.")
    var manifest: String

    @Option(name: .customLong("log"), help: "Data directory holding the topic (DATA/topics/TOPIC-N).")
    var logDirectory: String

    @Option(help: "Topic to read.")
    var topic: String = "telemetry"

    @Option(name: .customLong("device-tag"), help: "Tag holding the device id.")
    var deviceTag: String = "device"

    @Flag(name: .customLong("require-all-sent"), help: "Also fail when a sent but unacknowledged point is missing.")
    var requireAllSent = false

    @Flag(name: .customLong("match-run"), help: "Count only points whose `run` tag is the manifest's run (see simulate --tag-run).")
    var matchRun = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() async throws {
        let report: VerificationReport
        do {
            let expected = try Manifest.read(path: manifest)
            let source = LogTopicSource(dataDirectory: logDirectory, topic: topic)
            report = try await Verifier.verify(source: source, manifest: expected, deviceTag: deviceTag, runTag: matchRun ? expected.run : nil)
        } catch {
            Output.error("outpost verify: \(error)")
            throw ExitCode(2)
        }
        Output.line(json ? report.json(requireAllSent: requireAllSent) : report.text(requireAllSent: requireAllSent))
        if !report.passed(requireAllSent: requireAllSent) { throw ExitCode(1) }
    }
}
