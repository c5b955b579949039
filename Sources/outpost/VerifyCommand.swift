import ArgumentParser
import Foundation
import OutpostKafka
import OutpostSimulator

/// `outpost verify`: did everything the simulator sent arrive, once, in order?
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a topic against a simulation manifest: missing, duplicated and out-of-order sequence numbers.",
        discussion: """
            Reads the topic from a log directory (--log DATA) or from Kafka-protocol brokers (--bootstrap
            HOST:PORT, e.g. the central brokers a gateway replicates to) and compares every device's `seq` values with
            what the manifest says was sent and acknowledged. Exit status 0 when no acknowledged send is
            missing and no sequence number appears twice (--require-all-sent: no sent point may be missing
            either, for paths without acknowledgements such as TCP); 1 otherwise; 2 when the inputs cannot be read.
            Records a gateway declared dropped in a gap marker (disk budget, overflow: drop-oldest) are
            reported as declared drops, not as missing.
            """)

    @Option(help: "The manifest written by `outpost simulate --manifest`.")
    var manifest: String

    @Option(name: .customLong("log"), help: "Data directory holding the topic (DATA/topics/TOPIC-N).")
    var logDirectory: String?

    @Option(help: "Read the topic from these Kafka-protocol brokers instead: HOST:PORT[,HOST:PORT…].")
    var bootstrap: String?

    @Option(name: .customLong("tls-ca"), help: "With --bootstrap: connect over TLS, trusting this CA file (PEM).")
    var tlsCAFile: String?

    @Option(name: .customLong("sasl-username"), help: "With --bootstrap: SASL/PLAIN user; the password is read from $OUTPOST_SASL_PASSWORD.")
    var saslUsername: String?

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

    func validate() throws {
        guard (logDirectory == nil) != (bootstrap == nil) else { throw ValidationError("give exactly one of --log DATA and --bootstrap HOST:PORT") }
        if bootstrap == nil && (tlsCAFile != nil || saslUsername != nil) { throw ValidationError("--tls-ca and --sasl-username go with --bootstrap") }
    }

    func run() async throws {
        let report: VerificationReport
        do {
            let expected = try Manifest.read(path: manifest)
            let runTag = matchRun ? expected.run : nil
            if let logDirectory {
                report = try await Verifier.verify(source: LogTopicSource(dataDirectory: logDirectory, topic: topic), manifest: expected, deviceTag: deviceTag, runTag: runTag)
            } else {
                report = try await Verifier.verify(source: try brokerSource(), manifest: expected, deviceTag: deviceTag, runTag: runTag)
            }
        } catch {
            Output.error("outpost verify: \(error)")
            throw ExitCode(2)
        }
        Output.line(json ? report.json(requireAllSent: requireAllSent) : report.text(requireAllSent: requireAllSent))
        if !report.passed(requireAllSent: requireAllSent) { throw ExitCode(1) }
    }

    private func brokerSource() throws -> KafkaTopicSource {
        let addresses = try (bootstrap ?? "").split(separator: ",").map { text in
            guard let address = KafkaBrokerAddress(parsing: text.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--bootstrap: expected HOST:PORT, found '\(text)'")
            }
            return address
        }
        var connection = KafkaConnectionConfiguration(clientId: "outpost-verify")
        if let tlsCAFile { connection.transportSecurity = try KafkaClientTLS(caFile: tlsCAFile, certificateFile: nil, keyFile: nil) }
        if let saslUsername {
            guard let password = ProcessInfo.processInfo.environment["OUTPOST_SASL_PASSWORD"] else {
                throw ValidationError("--sasl-username needs the password in $OUTPOST_SASL_PASSWORD")
            }
            connection.authenticator = KafkaSASLPlain(username: saslUsername, password: password)
        }
        return KafkaTopicSource(bootstrap: addresses, topic: topic, connection: connection)
    }
}
