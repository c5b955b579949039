import Foundation
import NIOCore
import Testing
@testable import OutpostKafka

/// Every message type encodes and decodes at every version of its range, and the layout pitfalls of
/// kafka-subset.md (§2.3, §2.4, P3, P8) are where the spec says.
@Suite struct MessageCodecTests {
    static func bytes(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    /// A fully populated value of each message type (fields absent in some versions included).
    static let samples: [any KafkaMessage] = [
        ApiVersionsRequest(clientSoftwareName: "outpost", clientSoftwareVersion: "1.0"),
        ApiVersionsResponse.advertised,
        MetadataRequest(topics: ["telemetry", "alerts"], allowAutoTopicCreation: false),
        MetadataResponse(
            throttleTimeMs: 3, brokers: [.init(nodeId: 0, host: "127.0.0.1", port: 9092, rack: "r1")], clusterId: "outpost", controllerId: 0,
            topics: [
                .init(name: "telemetry", isInternal: false, partitions: [.init(partitionIndex: 0, leaderId: 0, replicaNodes: [0, 1], isrNodes: [0])]),
                .init(errorCode: .unknownTopicOrPartition, name: "nope", partitions: []),
            ]),
        ProduceRequest(
            transactionalId: nil, acks: -1, timeoutMs: 30_000,
            topics: [.init(name: "telemetry", partitions: [.init(partitionIndex: 1, records: bytes("batch")), .init(partitionIndex: 2, records: nil)])]),
        ProduceResponse(
            topics: [.init(name: "telemetry", partitions: [.init(partitionIndex: 1, errorCode: .none, baseOffset: 42, logAppendTimeMs: -1, logStartOffset: 7)])],
            throttleTimeMs: 5),
        FetchRequest(
            replicaId: -1, maxWaitMs: 500, minBytes: 1, maxBytes: 52_428_800, isolationLevel: 1, sessionId: 0, sessionEpoch: -1,
            topics: [.init(name: "telemetry", partitions: [.init(partition: 0, currentLeaderEpoch: 3, fetchOffset: 100, logStartOffset: -1, partitionMaxBytes: 1_048_576)])],
            forgottenTopics: [.init(name: "old", partitions: [4])], rackId: "r1"),
        FetchResponse(
            throttleTimeMs: 1, errorCode: .none, sessionId: 0,
            topics: [.init(name: "telemetry", partitions: [
                .init(partitionIndex: 0, highWatermark: 120, lastStableOffset: 120, logStartOffset: 0, abortedTransactions: [], records: bytes("batches")),
                .init(partitionIndex: 1, errorCode: .offsetOutOfRange, highWatermark: 0, lastStableOffset: 0, logStartOffset: 0, records: ByteBuffer()),
            ])]),
        ListOffsetsRequest(
            replicaId: -1, isolationLevel: 1,
            topics: [.init(name: "telemetry", partitions: [.init(partitionIndex: 0, timestamp: -2, maxNumOffsets: 1)])]),
        ListOffsetsResponse(
            throttleTimeMs: 0,
            topics: [.init(name: "telemetry", partitions: [.init(partitionIndex: 0, oldStyleOffsets: [], timestamp: -1, offset: 5)])]),
        FindCoordinatorRequest(key: "group-a", keyType: 0),
        FindCoordinatorResponse(throttleTimeMs: 0, errorCode: .none, errorMessage: nil, nodeId: 0, host: "127.0.0.1", port: 9092),
        JoinGroupRequest(
            groupId: "g", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 300_000, memberId: "", groupInstanceId: nil,
            protocolType: "consumer", protocols: [.init(name: "range", metadata: bytes("sub")), .init(name: "roundrobin", metadata: bytes("sub"))]),
        JoinGroupResponse(
            throttleTimeMs: 0, errorCode: .none, generationId: 2, protocolName: "range", leader: "m1", memberId: "m1",
            members: [.init(memberId: "m1", groupInstanceId: nil, metadata: bytes("sub1")), .init(memberId: "m2", metadata: bytes("sub2"))]),
        SyncGroupRequest(groupId: "g", generationId: 2, memberId: "m1", groupInstanceId: nil, assignments: [.init(memberId: "m2", assignment: bytes("a2"))]),
        SyncGroupResponse(throttleTimeMs: 0, errorCode: .none, assignment: bytes("a1")),
        HeartbeatRequest(groupId: "g", generationId: 2, memberId: "m1"),
        HeartbeatResponse(errorCode: .rebalanceInProgress),
        LeaveGroupRequest(groupId: "g", memberId: "m1"),
        LeaveGroupResponse(errorCode: .none),
        OffsetCommitRequest(
            groupId: "g", generationId: 2, memberId: "m1", groupInstanceId: nil, retentionTimeMs: -1,
            topics: [.init(name: "telemetry", partitions: [.init(partitionIndex: 0, committedOffset: 99, committedLeaderEpoch: -1, commitTimestamp: -1, committedMetadata: "meta")])]),
        OffsetCommitResponse(topics: [.init(name: "telemetry", partitions: [.init(partitionIndex: 0, errorCode: .none)])]),
        OffsetFetchRequest(groupId: "g", topics: [.init(name: "telemetry", partitionIndexes: [0, 1])]),
        OffsetFetchResponse(
            topics: [.init(name: "telemetry", partitions: [.init(partitionIndex: 0, committedOffset: 99, metadata: "meta"), .init(partitionIndex: 1, committedOffset: -1, metadata: "")])],
            errorCode: .none),
        InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: -1),
        InitProducerIdResponse(errorCode: .none, producerId: 1000, producerEpoch: 0),
    ]

    struct Case: CustomTestStringConvertible, Sendable {
        var index: Int
        var version: Int16
        var testDescription: String { "\(type(of: MessageCodecTests.samples[index])) v\(version)" }
    }

    static let cases: [Case] = samples.indices.flatMap { index in
        let message = samples[index]
        return type(of: message).versions.map { Case(index: index, version: $0) }
    }

    func roundTrip<M: KafkaMessage>(_ message: M, version: Int16) throws -> (first: [UInt8], second: [UInt8], decoded: M) {
        let encoded = message.encoded(version: version)
        let decoded = try M.decode(encoded, version: version)
        return (Array(encoded.readableBytesView), Array(decoded.encoded(version: version).readableBytesView), decoded)
    }

    @Test(arguments: MessageCodecTests.cases)
    func everyMessageRoundTripsAtEveryVersion(_ testCase: Case) throws {
        let message = Self.samples[testCase.index]
        let (first, second, decoded) = try roundTrip(message, version: testCase.version)
        #expect(first == second, "re-encoding the decoded value changes the bytes")
        // At the newest version every field is carried, so the value itself survives.
        if testCase.version == type(of: message).versions.upperBound && !(message is ApiVersionsRequest) {
            #expect(AnyHashable(decoded) == AnyHashable(message))
        }
    }

    @Test(arguments: MessageCodecTests.cases)
    func everyProperPrefixOfAMessageIsRejectedNotCrashedOn(_ testCase: Case) throws {
        let message = Self.samples[testCase.index]
        let encoded = message.encoded(version: testCase.version)
        let type = type(of: message)
        for length in 0..<encoded.readableBytes {
            let prefix = encoded.getSlice(at: encoded.readerIndex, length: length) ?? ByteBuffer()
            // A prefix may only decode if the version's layout has nothing left to read (e.g. an empty body).
            if let decoded = try? type.decode(prefix, version: testCase.version) {
                #expect(decoded.encoded(version: testCase.version).readableBytes == length)
            }
        }
        // One byte too many is trailing garbage.
        var longer = encoded
        longer.writeInteger(UInt8(0))
        #expect(throws: KafkaProtocolError.self) { _ = try type.decode(longer, version: testCase.version) }
    }

    // MARK: Layout pitfalls

    @Test func produceResponseCarriesThrottleLast() throws {
        let response = ProduceResponse(topics: [], throttleTimeMs: 0x0102_0304)
        let bytes = Array(response.encoded(version: 7).readableBytesView)
        #expect(bytes == [0, 0, 0, 0, 1, 2, 3, 4])  // empty topics array, then throttle
    }

    @Test func fetchResponseCarriesThrottleFirstAndRecordsAreNeverNullWhenEmpty() throws {
        let response = FetchResponse(throttleTimeMs: 9, topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, highWatermark: 0, lastStableOffset: 0, logStartOffset: 0, records: ByteBuffer())])])
        var reader = KafkaReader(response.encoded(version: 11))
        #expect(try reader.readInt32() == 9)  // throttle first
        #expect(try reader.readInt16() == 0)  // error code
        #expect(try reader.readInt32() == 0)  // session id
        _ = try reader.readInt32()
        _ = try reader.readString()
        _ = try reader.readInt32()
        _ = try reader.readInt32()  // partition
        _ = try reader.readInt16()
        _ = try reader.readInt64()  // high watermark
        _ = try reader.readInt64()  // last stable offset
        _ = try reader.readInt64()  // log start offset
        #expect(try reader.readInt32() == 0)  // aborted transactions: empty, not null
        #expect(try reader.readInt32() == -1)  // preferred read replica
        #expect(try reader.readInt32() == 0)  // records: length 0, not −1 (P3)
        #expect(reader.isAtEnd)
    }

    @Test func offsetFetchResponsePutsItsErrorCodeAfterTheTopics() throws {
        let response = OffsetFetchResponse(throttleTimeMs: 0, topics: [], errorCode: .notCoordinator)
        #expect(Array(response.encoded(version: 5).readableBytesView) == [0, 0, 0, 0, 0, 0, 0, 0, 0, 16])
    }

    @Test func apiVersionsFallbackIsAV0BodyWithErrorThirtyFiveAndTheApiVersionsEntry() throws {
        let frame = KafkaFrame.encodeResponse(ApiVersionsResponse.unsupportedVersionFallback, version: 0, correlationId: 77)
        var reader = KafkaReader(frame)
        #expect(Int(try reader.readInt32()) == frame.readableBytes - 4)
        #expect(try reader.readInt32() == 77)  // response header v0: no tag buffer
        #expect(try reader.readInt16() == 35)
        let keys = try reader.readArray { (reader) throws(KafkaProtocolError) in
            (try reader.readInt16(), try reader.readInt16(), try reader.readInt16())
        }
        #expect(keys.contains { $0 == (18, 0, 2) })
        #expect(reader.isAtEnd, "v0: no throttle field")
    }

    @Test func advertisedVersionsAreExactlyTheSubset() {
        let advertised = Dictionary(uniqueKeysWithValues: ApiVersionsResponse.advertised.apiKeys.map { ($0.apiKey, $0.minVersion...$0.maxVersion) })
        #expect(advertised == [0: 0...7, 1: 0...11, 2: 0...2, 3: 0...4, 8: 0...7, 9: 0...5, 10: 0...2, 11: 0...5, 12: 0...3, 13: 0...1, 14: 0...3, 18: 0...2, 22: 0...1])
        // Nothing flexible is advertised, so every response uses header v0 (§2.2).
        for key in KafkaAPIKey.allCases {
            #expect(!key.isFlexible(key.supportedVersions.upperBound))
            #expect(key.responseHeaderVersion(key.supportedVersions.upperBound) == 0)
        }
        #expect(KafkaAPIKey.apiVersions.responseHeaderVersion(3) == 0)
    }

    @Test func metadataTopicArraySemanticsDifferBetweenV0AndLater() throws {
        #expect(MetadataRequest(topics: nil).requestsAllTopics(version: 4))
        #expect(!MetadataRequest(topics: []).requestsAllTopics(version: 4))
        #expect(MetadataRequest(topics: []).requestsAllTopics(version: 0))
        // v1+ null array on the wire is −1.
        #expect(Array(MetadataRequest(topics: nil).encoded(version: 1).readableBytesView) == [0xFF, 0xFF, 0xFF, 0xFF])
    }

    @Test func requestFramesCarryHeaderV1AndResponsesDecodeWithTheirCorrelationId() throws {
        let frame = KafkaFrame.encodeRequest(HeartbeatRequest(groupId: "g", generationId: 1, memberId: "m"), version: 3, correlationId: 5, clientId: "c")
        var buffer = frame
        let body = try #require(try KafkaFrameDecoder.nextFrame(from: &buffer, maxFrameBytes: 1 << 20))
        guard case .request(let parsed) = try KafkaRequestFrame.parse(body) else {
            Issue.record("not parsed")
            return
        }
        #expect(parsed.header == KafkaRequestHeader(apiKey: .heartbeat, apiVersion: 3, correlationId: 5, clientId: "c"))
        #expect(parsed.request == .heartbeat(HeartbeatRequest(groupId: "g", generationId: 1, memberId: "m")))

        var response = KafkaFrame.encodeResponse(HeartbeatResponse(errorCode: .rebalanceInProgress), version: 3, correlationId: 5)
        let responseBody = try #require(try KafkaFrameDecoder.nextFrame(from: &response, maxFrameBytes: 1 << 20))
        let decoded = try KafkaFrame.decodeResponse(responseBody, for: HeartbeatRequest.self, version: 3, correlationId: 5)
        #expect(decoded.errorCode == .rebalanceInProgress)
        #expect(throws: KafkaProtocolError.correlationMismatch(expected: 6, received: 5)) {
            _ = try KafkaFrame.decodeResponse(responseBody, for: HeartbeatRequest.self, version: 3, correlationId: 6)
        }
    }

    @Test func unknownApisAndUnservedVersionsParseAsUnsupportedNotAsErrors() throws {
        for (key, version) in [(Int16(19), Int16(0)), (0, 9), (3, 12), (18, 5)] {
            var writer = KafkaWriter()
            KafkaRequestHeader(apiKeyRawValue: key, apiVersion: version, correlationId: 1, clientId: nil).encode(to: &writer)
            writer.writeInt32(12345)  // some body
            guard case .unsupported(let header) = try KafkaRequestFrame.parse(writer.buffer) else {
                Issue.record("\(key) v\(version) should be unsupported")
                continue
            }
            #expect(header.correlationId == 1)
        }
    }

    @Test func hostileCountsAndLengthsThrowBeforeAllocating() throws {
        var writer = KafkaWriter()
        writer.writeInt32(Int32.max)  // brokers count
        #expect(throws: KafkaProtocolError.self) { _ = try MetadataResponse.decode(writer.buffer, version: 4) }
        var strings = KafkaWriter()
        strings.writeInt16(-2)
        #expect(throws: KafkaProtocolError.invalidLength(field: "key", length: -2)) { _ = try FindCoordinatorRequest.decode(strings.buffer, version: 2) }
        var utf8 = KafkaWriter()
        utf8.writeInt16(2)
        utf8.buffer.writeBytes([0xC3, 0x28])
        utf8.writeInt8(0)
        #expect(throws: KafkaProtocolError.invalidUTF8(field: "key")) { _ = try FindCoordinatorRequest.decode(utf8.buffer, version: 1) }
    }

    @Test func errorCodesHaveKafkasNames() {
        #expect(KafkaErrorCode.unsupportedVersion.name == "UNSUPPORTED_VERSION")
        #expect(KafkaErrorCode.outOfOrderSequenceNumber.rawValue == 45)
        #expect(KafkaErrorCode(999).name == "ERROR_999")
        #expect(KafkaErrorCode.notLeaderOrFollower.isRetriable)
        #expect(!KafkaErrorCode.invalidProducerEpoch.isRetriable)
    }
}
