import Foundation
import NIOCore
import Testing
@testable import OutpostKafka

/// Every request frame captured from a real client (Tests/Fixtures/kafka-requests) decodes, and re-encodes
/// byte for byte from the decoded value.
@Suite struct FixtureTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/kafka-requests")

    struct Fixture: CustomTestStringConvertible, Sendable {
        var client: String
        var name: String
        var bytes: [UInt8]
        var testDescription: String { "\(client)/\(name)" }
    }

    static func all() throws -> [Fixture] {
        var fixtures: [Fixture] = []
        for client in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() {
            let clientDirectory = directory.appendingPathComponent(client)
            for name in try FileManager.default.contentsOfDirectory(atPath: clientDirectory.path).sorted() where name.hasSuffix(".bin") {
                let bytes = [UInt8](try Data(contentsOf: clientDirectory.appendingPathComponent(name)))
                fixtures.append(Fixture(client: client, name: name, bytes: bytes))
            }
        }
        return fixtures
    }

    @Test func thereAreFixturesFromEveryClient() throws {
        let fixtures = try Self.all()
        #expect(fixtures.count >= 100)
        #expect(Set(fixtures.map(\.client)) == ["kcat-L", "kcat-P", "kcat-C", "kcat-G", "confluent-kafka", "confluent-kafka-group", "kafka-python"])
    }

    @Test(arguments: try FixtureTests.all())
    func decodesAndReencodesByteForByte(fixture: Fixture) throws {
        var buffer = ByteBuffer(bytes: fixture.bytes)
        let frame = try #require(try KafkaFrameDecoder.nextFrame(from: &buffer, maxFrameBytes: 1 << 20))
        #expect(buffer.readableBytes == 0, "one frame per file")
        guard case .request(let parsed) = try KafkaRequestFrame.parse(frame) else {
            Issue.record("\(fixture.name) parsed as unsupported")
            return
        }
        // The file name says <api key>-v<version>-<n>.bin.
        let parts = fixture.name.split(separator: "-")
        #expect(Int16(parts[0]) == parsed.header.apiKeyRawValue)
        #expect("v\(parsed.header.apiVersion)" == parts[1])
        #expect(parsed.request.apiKey.rawValue == parsed.header.apiKeyRawValue)

        var writer = KafkaWriter()
        writer.writeInt32(0)
        parsed.header.encode(to: &writer)
        parsed.request.encode(to: &writer, version: parsed.header.apiVersion)
        KafkaFrame.patchSize(&writer.buffer)
        #expect(Array(writer.buffer.readableBytesView) == fixture.bytes)
    }

    @Test func flexibleApiVersionsRequestsCarryTheClientSoftware() throws {
        let fixtures = try Self.all().filter { $0.name.hasPrefix("18-v3") || $0.name.hasPrefix("18-v4") }
        #expect(!fixtures.isEmpty)
        for fixture in fixtures {
            var buffer = ByteBuffer(bytes: fixture.bytes)
            let frame = try #require(try KafkaFrameDecoder.nextFrame(from: &buffer, maxFrameBytes: 1 << 20))
            guard case .request(let parsed) = try KafkaRequestFrame.parse(frame), case .apiVersions(let request) = parsed.request else {
                Issue.record("\(fixture.testDescription) is not an ApiVersions request")
                continue
            }
            #expect(parsed.header.headerVersion == 2)
            #expect(["librdkafka", "confluent-kafka-python", "kafka-python"].contains(request.clientSoftwareName))
            #expect(!request.clientSoftwareVersion.isEmpty)
            // Served versions stop at 2: the broker answers these with the fallback.
            #expect(!KafkaAPIKey.apiVersions.supportedVersions.contains(parsed.header.apiVersion))
        }
    }

    @Test func produceFixturesCarryOneBatchPerPartitionAndMetadataRequestsAskForAllTopicsOrSome() throws {
        for fixture in try Self.all() {
            var buffer = ByteBuffer(bytes: fixture.bytes)
            let frame = try #require(try KafkaFrameDecoder.nextFrame(from: &buffer, maxFrameBytes: 1 << 20))
            guard case .request(let parsed) = try KafkaRequestFrame.parse(frame) else { continue }
            switch parsed.request {
            case .produce(let produce):
                #expect(produce.acks == -1 || produce.acks == 1)
                for partition in produce.topics.flatMap(\.partitions) {
                    let records = try #require(partition.records)
                    #expect(records.readableBytes >= 61)
                }
            case .fetch(let fetch):
                #expect(fetch.replicaId == -1)
                #expect(fetch.maxWaitMs > 0)
            default:
                break
            }
        }
    }
}
