import Foundation
import Testing

/// `outpost broker` as a child process, used by real Kafka clients that do not know it is not Kafka:
/// kcat (librdkafka 2.0.2), confluent-kafka (librdkafka 2.16) and kafka-python (kafka-subset.md).
@Suite(.serialized) struct BrokerInteropTests {
    func directory(_ name: String = #function) throws -> String {
        try TestEnvironment.temporaryDirectory("broker-" + name).path
    }

    // MARK: kcat

    struct KcatMetadata: Decodable {
        struct Broker: Decodable { var id: Int; var name: String }
        struct Topic: Decodable {
            struct Partition: Decodable { var partition: Int; var leader: Int; var replicas: [Replica]; var isrs: [Replica] }
            struct Replica: Decodable { var id: Int }
            var topic: String
            var partitions: [Partition]
        }
        var brokers: [Broker]
        var topics: [Topic]
    }

    @Test func kcatListsTheBrokerAndItsTopics() throws {
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["telemetry:3", "alerts:1"])
        let result = try runProcess(try Interop.kcat(), ["-b", broker.bootstrap, "-L", "-J", "-m", "10"])
        try #require(result.status == 0, "kcat -L failed: \(result.stderr)")
        let metadata = try JSONDecoder().decode(KcatMetadata.self, from: result.stdout)
        #expect(metadata.brokers.map(\.id) == [0])
        #expect(metadata.brokers.first?.name == broker.bootstrap, "advertised as reachable 127.0.0.1:PORT (P1)")
        let topics = Dictionary(uniqueKeysWithValues: metadata.topics.map { ($0.topic, $0) })
        #expect(topics.keys.sorted() == ["alerts", "telemetry"])
        #expect(topics["telemetry"]?.partitions.map(\.partition).sorted() == [0, 1, 2])
        #expect(topics["telemetry"]?.partitions.allSatisfy { $0.leader == 0 && $0.replicas.map(\.id) == [0] && $0.isrs.map(\.id) == [0] } == true)
        #expect(broker.stop() == 0, "SIGTERM is an orderly shutdown")
    }

    /// Lines of seeded random bytes: every byte value but the line and key delimiters appears.
    static func randomMessages(count: Int, seed: UInt64) -> [(key: [UInt8], value: [UInt8])] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { index in
            let key = Array("device-\(index % 7)".utf8)
            let length = Int.random(in: 1...300, using: &generator)
            let value = (0..<length).map { _ in
                var byte = UInt8.random(in: 0...255, using: &generator)
                while byte == 0x0A { byte = UInt8.random(in: 0...255, using: &generator) }
                return byte
            }
            return (key, value)
        }
    }

    @Test(arguments: ["gzip", "none"])
    func kcatProducesAndReadsEverythingBackByteForByte(compression: String) throws {
        let broker = try BrokerProcess.start(dataDirectory: try directory("kcat-\(compression)"), topics: ["raw:2"])
        let kcat = try Interop.kcat()
        let messages = Self.randomMessages(count: 2_000, seed: compression == "gzip" ? 1 : 2)
        var input = Data()
        for message in messages {
            input.append(contentsOf: message.key)
            input.append(0x09)
            input.append(contentsOf: message.value)
            input.append(0x0A)
        }
        let inputFile = broker.dataDirectory + "/input.txt"
        try input.write(to: URL(fileURLWithPath: inputFile))
        var produceArguments = ["-b", broker.bootstrap, "-P", "-t", "raw", "-p", "1", "-K", "\t", "-z", compression, "-l", inputFile]
        if compression == "gzip" { produceArguments += ["-X", "enable.idempotence=true"] }
        let produced = try runProcess(kcat, produceArguments)
        try #require(produced.status == 0, "kcat -P failed: \(produced.stderr)")

        // -e: kcat must see the end of the partition (LSO = high watermark, P5) and exit.
        let consumed = try runProcess(kcat, ["-b", broker.bootstrap, "-C", "-t", "raw", "-p", "1", "-o", "beginning", "-e", "-q", "-K", "\t", "-f", "%k\t%s\n"])
        try #require(consumed.status == 0, "kcat -C failed: \(consumed.stderr)")
        #expect(consumed.stdout == input, "every key and value back byte for byte, in order")
        #expect(broker.stop() == 0)
    }

    // MARK: Idempotent producers

    struct ProduceReport: Decodable {
        var delivered: Int
        var errors: [String]
        var consumed: Int
        var duplicates: Int
        var missing: Int
        var out_of_order: Int
        var offset_mismatches: Int
    }

    @Test(arguments: ["confluent", "kafka-python"])
    func anIdempotentAcksAllProducerDeliversEveryMessageExactlyOnce(client: String) throws {
        let broker = try BrokerProcess.start(dataDirectory: try directory("idempotent-\(client)"), topics: ["idem:3"])
        let report = try Interop.python(
            "broker_produce.py", ["--bootstrap", broker.bootstrap, "--topic", "idem", "--count", "3000", "--client", client], as: ProduceReport.self)
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.delivered == 3000)
        #expect(report.consumed == 3000)
        #expect(report.duplicates == 0)
        #expect(report.missing == 0)
        #expect(report.out_of_order == 0)
        #expect(report.offset_mismatches == 0, "the acknowledged offsets are where the records are")
        #expect(broker.stop() == 0)
    }

    /// kill -9 of the broker while librdkafka has batches in flight; the broker comes back on the same
    /// port, rebuilds producer state from the stored batches, and recognises the resent batches: every
    /// message exactly once, in order per key.
    @Test func anIdempotentProducerAcrossABrokerKillDeliversExactlyOnce() async throws {
        var broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["crash:3"])
        let progress = broker.dataDirectory + "/progress"
        let script = Interop.scripts.appendingPathComponent("broker_produce.py").path
        let producer = Process()
        producer.executableURL = URL(fileURLWithPath: try python3())
        producer.arguments = [
            script, "--bootstrap", broker.bootstrap, "--topic", "crash", "--count", "20000", "--client", "confluent",
            "--progress-file", progress, "--progress-at", "5000",
        ]
        let output = Pipe()
        producer.standardOutput = output
        producer.standardError = FileHandle.nullDevice
        try producer.run()
        var waited = 0
        while !FileManager.default.fileExists(atPath: progress) && producer.isRunning && waited < 600 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        try #require(FileManager.default.fileExists(atPath: progress), "the producer never got going")
        broker.kill9()
        try await Task.sleep(for: .milliseconds(300))
        broker = try broker.restart()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        producer.waitUntilExit()
        let lastLine = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        let report = try JSONDecoder().decode(ProduceReport.self, from: Data(lastLine.utf8))
        #expect(report.errors.isEmpty, "\(report.errors)")
        #expect(report.delivered == 20000)
        #expect(report.duplicates == 0)
        #expect(report.missing == 0)
        #expect(report.out_of_order == 0)
        #expect(broker.stop() == 0)
    }

    // MARK: Consumer groups

    struct SplitReport: Decodable {
        var split: [[Int]]?
        var takeover: [Int]?
        var consumed_by_second: Int
        var distinct: Int
        var duplicates: Int
        var missing: Int
    }

    struct ResumeReport: Decodable {
        var committed_before: Int
        var consumed: Int
        var old: Int
        var new_distinct: Int
        var duplicates: Int
    }

    @Test func twoConsumersSplitThePartitionsOneLeavesTheOtherTakesOverAndOffsetsResumeAfterARestart() throws {
        var broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["readings:4"])
        let split = try Interop.python(
            "broker_group.py", ["split", "--bootstrap", broker.bootstrap, "--topic", "readings", "--group", "monitors", "--count", "400"],
            as: SplitReport.self)
        let halves = try #require(split.split, "the two consumers never held disjoint assignments")
        #expect(!halves[0].isEmpty && !halves[1].isEmpty)
        #expect(Set(halves[0]).isDisjoint(with: halves[1]))
        #expect(Set(halves[0] + halves[1]) == [0, 1, 2, 3], "together they cover every partition")
        #expect(split.takeover == [0, 1, 2, 3], "after the leave, the remaining consumer owns every partition")
        #expect(split.consumed_by_second > 0)
        #expect(split.distinct == 400)
        #expect(split.missing == 0)
        #expect(split.duplicates == 0, "commits before the handover: nothing is read twice")

        #expect(broker.stop() == 0)
        broker = try broker.restart()
        let resumed = try Interop.python(
            "broker_group.py",
            ["resume", "--bootstrap", broker.bootstrap, "--topic", "readings", "--group", "monitors", "--count", "100", "--previous", "400"],
            as: ResumeReport.self)
        #expect(resumed.committed_before == 400, "committed offsets survived the restart")
        #expect(resumed.old == 0, "nothing from before the commit is read again")
        #expect(resumed.new_distinct == 100)
        #expect(resumed.duplicates == 0)
        #expect(broker.stop() == 0)
    }

    struct CrashReport: Decodable {
        var split: [[Int]]?
        var takeover: [Int]?
        var takeover_seconds: Double?
        var missing: Int
    }

    /// A member killed with SIGKILL sends no LeaveGroup: its session times out (6 s, the broker minimum)
    /// and the survivor is rebalanced onto every partition.
    @Test func aConsumerThatDiesWithoutLeavingIsRemovedAfterItsSessionAndTheOtherTakesOver() throws {
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["crashy:4"])
        let report = try Interop.python(
            "broker_group.py", ["crash", "--bootstrap", broker.bootstrap, "--topic", "crashy", "--group", "survivors", "--count", "400"],
            as: CrashReport.self)
        let halves = try #require(report.split, "the two consumers never split the partitions")
        #expect(!halves[0].isEmpty && !halves[1].isEmpty && Set(halves[0]).isDisjoint(with: halves[1]))
        #expect(report.takeover == [0, 1, 2, 3])
        #expect(report.missing == 0)
        #expect(broker.stop() == 0)
    }

    // MARK: Robustness

    struct FuzzReport: Decodable {
        var cases: Int
        var seed: UInt64
        var connect_failures: Int
        var responses: Int
        var closed_by_broker: Int
    }

    @Test func theBrokerSurvivesRandomAndMutatedFramesAndServesANormalClientAfterwards() throws {
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["telemetry:3"])
        let seed = ProcessInfo.processInfo.environment["OUTPOST_FUZZ_SEED"] ?? String(UInt32.random(in: 0...UInt32.max))
        let report = try Interop.python(
            "broker_fuzz.py",
            ["--port", String(broker.port), "--fixtures", TestEnvironment.fixtures.appendingPathComponent("kafka-requests").path, "--cases", "1500", "--seed", seed],
            as: FuzzReport.self)
        #expect(report.cases == 1500, "seed \(report.seed)")
        #expect(report.connect_failures == 0, "the broker stopped accepting connections (seed \(report.seed))")
        #expect(broker.isRunning, "the broker died (seed \(report.seed)): \(broker.stderrText.suffix(2000))")
        #expect(report.closed_by_broker > 0 && report.responses > 0)

        // A normal client afterwards: metadata, produce, consume.
        let kcat = try Interop.kcat()
        let listed = try runProcess(kcat, ["-b", broker.bootstrap, "-L", "-t", "telemetry"])
        #expect(listed.status == 0 && listed.stdoutText.contains("topic \"telemetry\" with 3 partitions"), "seed \(report.seed)")
        let produced = try runProcess(kcat, ["-b", broker.bootstrap, "-P", "-t", "after-fuzz", "-p", "0"], stdin: Data("one\ntwo\nthree\n".utf8))
        #expect(produced.status == 0, "\(produced.stderr)")
        let consumed = try runProcess(kcat, ["-b", broker.bootstrap, "-C", "-t", "after-fuzz", "-p", "0", "-o", "beginning", "-e", "-q"])
        #expect(consumed.stdoutText == "one\ntwo\nthree\n", "seed \(report.seed)")
        #expect(try broker.metric("outpost_broker_protocol_errors_total") ?? 0 > 0, "malformed requests are counted")
        #expect(broker.stop() == 0)
    }

    @Test func requestAndConnectionMetricsAreExported() throws {
        let broker = try BrokerProcess.start(dataDirectory: try directory(), topics: ["m:1"])
        _ = try runProcess(try Interop.kcat(), ["-b", broker.bootstrap, "-L"])
        #expect(try broker.metric("outpost_broker_requests_total{api=\"Metadata\"}") ?? 0 >= 1)
        #expect(try broker.metric("outpost_broker_requests_total{api=\"ApiVersions\"}") ?? 0 >= 1)
        #expect(try broker.metric("outpost_broker_connections_accepted_total") ?? 0 >= 1)
        #expect(try broker.metricsText().contains("outpost_broker_request_seconds"))
        #expect(broker.stop() == 0)
    }
}

extension BrokerInteropTests {
    /// SplitMix64: a seeded generator so test data is reproducible.
    struct SeededGenerator: RandomNumberGenerator {
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
}
