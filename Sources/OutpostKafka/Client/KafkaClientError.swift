import OutpostCore

/// Everything the client can fail with. Operating errors (a broker down, a refused request) are values of
/// this type; a broken invariant of the client itself traps instead.
public enum KafkaClientError: Error, Hashable, Sendable, CustomStringConvertible {
    // MARK: Transport (retriable: the request may be sent again, on a new connection)

    /// TCP connect, or the ApiVersions handshake, did not succeed.
    case connectionFailed(broker: KafkaBrokerAddress, reason: String)
    /// The connection closed before the response arrived: the broker may or may not have acted on the
    /// request.
    case connectionClosed(broker: KafkaBrokerAddress)
    /// The broker refused our credentials (SASL). Not retried: a wrong password does not fix itself;
    /// the caller decides whether to keep trying (with its own, longer backoff) and says so loudly.
    case authenticationFailed(broker: KafkaBrokerAddress, reason: String)
    /// No response within the request timeout; the connection was closed (responses come in order, so a
    /// late one cannot be skipped).
    case requestTimedOut(api: KafkaAPIKey, broker: KafkaBrokerAddress)
    /// None of the bootstrap or known brokers accepted a connection.
    case noBrokerAvailable(tried: [KafkaBrokerAddress])
    /// A connection's bounded request queue was full (`KafkaClientConfiguration.queuedRequestsPerConnectionMax`).
    case requestQueueFull(broker: KafkaBrokerAddress)

    // MARK: Protocol

    /// The broker's bytes could not be read; the connection was closed.
    case malformedResponse(broker: KafkaBrokerAddress, KafkaProtocolError)
    /// No version of this API is usable with that broker (its ApiVersions range and ours do not overlap).
    case unsupportedByBroker(api: KafkaAPIKey, broker: KafkaBrokerAddress)

    // MARK: Answers

    /// The broker answered with an error code where no more specific case applies.
    case broker(KafkaErrorCode, context: String)
    /// The topic does not exist (Metadata said UNKNOWN_TOPIC_OR_PARTITION), or the partition is outside it.
    case unknownTopicOrPartition(topic: String, partition: Int32?)
    /// The partition has no leader right now.
    case leaderNotAvailable(KafkaTopicPartition)
    /// Fetch or ListOffsets at an offset the partition does not hold.
    case offsetOutOfRange(KafkaTopicPartition, offset: Offset)

    // MARK: Producer

    /// OUT_OF_ORDER_SEQUENCE_NUMBER for the oldest unacknowledged batch of a partition: the broker expected
    /// another sequence (a gap, e.g. a declared drop, or state lost). Re-initialise the producer identity
    /// (new InitProducerId; sequences from 0) before sending to this partition again.
    case outOfOrderSequence(KafkaTopicPartition, producer: ProducerIdentity)
    /// INVALID_PRODUCER_EPOCH or UNKNOWN_PRODUCER_ID: a newer instance of this producer id exists, or the
    /// broker forgot it. Re-initialise.
    case producerFenced(KafkaTopicPartition, KafkaErrorCode)
    /// The producer (automatic sequences) hit a sequence error on this partition earlier and must be
    /// re-initialised (`KafkaProducer.reinitialize()`) before it sends there again.
    case producerNeedsReinitialization(KafkaTopicPartition)
    /// The batch was never acknowledged because an earlier batch of the same partition failed for good. If
    /// it had been sent before that failure, the broker may still have appended it.
    case abortedAfterEarlierFailure(KafkaTopicPartition)
    /// The bytes given to `send` are not exactly one valid RecordBatch v2.
    case invalidBatch(RecordBatchError)
    /// `send` was called in a way this producer's mode does not allow (e.g. an explicit identity on a
    /// producer with automatic sequences).
    case invalidUsage(String)

    // MARK: Consumer and group

    /// A fetched batch failed its CRC or could not be decoded.
    case corruptBatch(KafkaTopicPartition, offset: Offset, RecordBatchError)
    /// A group request was refused in a way the membership cannot recover from (e.g.
    /// INCONSISTENT_GROUP_PROTOCOL, INVALID_SESSION_TIMEOUT).
    case groupFailed(group: String, KafkaErrorCode)
    /// OffsetCommit outside a generation the member belongs to.
    case notAGroupMember(group: String)

    // MARK: Lifecycle

    /// The client, producer or consumer was closed.
    case closed
    /// The calling task was cancelled.
    case cancelled

    /// Whether the same request may succeed if tried again (after a metadata refresh or a reconnect).
    public var isRetriable: Bool {
        switch self {
        case .connectionFailed, .connectionClosed, .requestTimedOut, .noBrokerAvailable, .requestQueueFull, .malformedResponse,
            .leaderNotAvailable, .unknownTopicOrPartition:
            true
        case .broker(let code, _): code.isRetriable
        default: false
        }
    }

    /// Whether partition leadership or the broker list may have changed, so metadata should be refreshed.
    var invalidatesMetadata: Bool {
        switch self {
        case .connectionFailed, .connectionClosed, .requestTimedOut, .noBrokerAvailable, .leaderNotAvailable, .unknownTopicOrPartition:
            true
        case .broker(let code, _): code.invalidatesMetadata
        default: false
        }
    }

    public var description: String {
        switch self {
        case .connectionFailed(let broker, let reason): "could not connect to \(broker): \(reason)"
        case .connectionClosed(let broker): "connection to \(broker) closed before the response arrived"
        case .authenticationFailed(let broker, let reason): "authentication with \(broker) failed: \(reason)"
        case .requestTimedOut(let api, let broker): "\(api) request to \(broker) timed out"
        case .noBrokerAvailable(let tried): "no broker reachable (tried \(tried.map(\.description).joined(separator: ", ")))"
        case .requestQueueFull(let broker): "request queue to \(broker) is full"
        case .malformedResponse(let broker, let error): "malformed response from \(broker): \(error)"
        case .unsupportedByBroker(let api, let broker): "\(broker) supports no version of \(api) this client speaks"
        case .broker(let code, let context): "\(context): \(code)"
        case .unknownTopicOrPartition(let topic, let partition):
            partition.map { "unknown topic or partition \(topic)-\($0)" } ?? "unknown topic \(topic)"
        case .leaderNotAvailable(let partition): "no leader for \(partition)"
        case .offsetOutOfRange(let partition, let offset): "offset \(offset) is out of range for \(partition)"
        case .outOfOrderSequence(let partition, let producer):
            "OUT_OF_ORDER_SEQUENCE_NUMBER on \(partition) for producer \(producer.producerId) epoch \(producer.producerEpoch) sequence \(producer.baseSequence)"
        case .producerFenced(let partition, let code): "producer fenced on \(partition): \(code)"
        case .producerNeedsReinitialization(let partition): "producer must be re-initialised before sending to \(partition)"
        case .abortedAfterEarlierFailure(let partition): "not acknowledged: an earlier batch for \(partition) failed"
        case .invalidBatch(let error): "not one valid RecordBatch v2: \(error)"
        case .invalidUsage(let detail): detail
        case .corruptBatch(let partition, let offset, let error): "corrupt batch in \(partition) at offset \(offset): \(error)"
        case .groupFailed(let group, let code): "group \(group) failed: \(code)"
        case .notAGroupMember(let group): "not a member of a current generation of group \(group)"
        case .closed: "closed"
        case .cancelled: "cancelled"
        }
    }
}

extension KafkaErrorCode {
    /// Codes after which a client refreshes metadata before retrying.
    var invalidatesMetadata: Bool {
        self == .notLeaderOrFollower || self == .unknownTopicOrPartition || self == .leaderNotAvailable
            || self == .fencedLeaderEpoch || self == .unknownLeaderEpoch
    }
}
