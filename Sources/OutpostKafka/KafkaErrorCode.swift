/// A Kafka error code (AK `clients/.../protocol/Errors.java`). A struct rather than an enum so that any
/// code read off the wire is representable; the named constants are the ones this project returns or
/// interprets (kafka-subset.md §2.5).
public struct KafkaErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int16

    public init(rawValue: Int16) { self.rawValue = rawValue }
    public init(_ rawValue: Int16) { self.rawValue = rawValue }

    public static let unknownServerError = KafkaErrorCode(-1)
    public static let none = KafkaErrorCode(0)
    public static let offsetOutOfRange = KafkaErrorCode(1)
    public static let corruptMessage = KafkaErrorCode(2)
    public static let unknownTopicOrPartition = KafkaErrorCode(3)
    public static let leaderNotAvailable = KafkaErrorCode(5)
    public static let notLeaderOrFollower = KafkaErrorCode(6)
    public static let requestTimedOut = KafkaErrorCode(7)
    public static let messageTooLarge = KafkaErrorCode(10)
    public static let offsetMetadataTooLarge = KafkaErrorCode(12)
    public static let coordinatorLoadInProgress = KafkaErrorCode(14)
    public static let coordinatorNotAvailable = KafkaErrorCode(15)
    public static let notCoordinator = KafkaErrorCode(16)
    public static let invalidTopicException = KafkaErrorCode(17)
    public static let recordListTooLarge = KafkaErrorCode(18)
    public static let invalidRequiredAcks = KafkaErrorCode(21)
    public static let illegalGeneration = KafkaErrorCode(22)
    public static let inconsistentGroupProtocol = KafkaErrorCode(23)
    public static let invalidGroupId = KafkaErrorCode(24)
    public static let unknownMemberId = KafkaErrorCode(25)
    public static let invalidSessionTimeout = KafkaErrorCode(26)
    public static let rebalanceInProgress = KafkaErrorCode(27)
    /// SaslHandshake: the client asked for a mechanism the server has not enabled.
    public static let unsupportedSaslMechanism = KafkaErrorCode(33)
    /// A SASL request out of sequence (e.g. SaslAuthenticate on an authenticated connection, or SASL on a
    /// listener without it).
    public static let illegalSaslState = KafkaErrorCode(34)
    public static let unsupportedVersion = KafkaErrorCode(35)
    public static let invalidRequest = KafkaErrorCode(42)
    public static let outOfOrderSequenceNumber = KafkaErrorCode(45)
    public static let duplicateSequenceNumber = KafkaErrorCode(46)
    public static let invalidProducerEpoch = KafkaErrorCode(47)
    public static let kafkaStorageError = KafkaErrorCode(56)
    /// SaslAuthenticate: wrong credentials or a malformed token; the server closes the connection after it.
    public static let saslAuthenticationFailed = KafkaErrorCode(58)
    public static let unknownProducerId = KafkaErrorCode(59)
    public static let fencedLeaderEpoch = KafkaErrorCode(74)
    public static let unknownLeaderEpoch = KafkaErrorCode(75)
    public static let unsupportedCompressionType = KafkaErrorCode(76)
    public static let memberIdRequired = KafkaErrorCode(79)
    public static let groupMaxSizeReached = KafkaErrorCode(81)
    public static let invalidRecord = KafkaErrorCode(87)

    /// The one table: code → (Kafka's name, whether a client may retry the request as is).
    static let table: [Int16: (name: String, retriable: Bool)] = [
        -1: ("UNKNOWN_SERVER_ERROR", false),
        0: ("NONE", false),
        1: ("OFFSET_OUT_OF_RANGE", false),
        2: ("CORRUPT_MESSAGE", true),
        3: ("UNKNOWN_TOPIC_OR_PARTITION", true),
        5: ("LEADER_NOT_AVAILABLE", true),
        6: ("NOT_LEADER_OR_FOLLOWER", true),
        7: ("REQUEST_TIMED_OUT", true),
        10: ("MESSAGE_TOO_LARGE", false),
        12: ("OFFSET_METADATA_TOO_LARGE", false),
        14: ("COORDINATOR_LOAD_IN_PROGRESS", true),
        15: ("COORDINATOR_NOT_AVAILABLE", true),
        16: ("NOT_COORDINATOR", true),
        17: ("INVALID_TOPIC_EXCEPTION", false),
        18: ("RECORD_LIST_TOO_LARGE", false),
        21: ("INVALID_REQUIRED_ACKS", false),
        22: ("ILLEGAL_GENERATION", false),
        23: ("INCONSISTENT_GROUP_PROTOCOL", false),
        24: ("INVALID_GROUP_ID", false),
        25: ("UNKNOWN_MEMBER_ID", false),
        26: ("INVALID_SESSION_TIMEOUT", false),
        27: ("REBALANCE_IN_PROGRESS", false),
        33: ("UNSUPPORTED_SASL_MECHANISM", false),
        34: ("ILLEGAL_SASL_STATE", false),
        35: ("UNSUPPORTED_VERSION", false),
        42: ("INVALID_REQUEST", false),
        45: ("OUT_OF_ORDER_SEQUENCE_NUMBER", false),
        46: ("DUPLICATE_SEQUENCE_NUMBER", false),
        47: ("INVALID_PRODUCER_EPOCH", false),
        56: ("KAFKA_STORAGE_ERROR", true),
        58: ("SASL_AUTHENTICATION_FAILED", false),
        59: ("UNKNOWN_PRODUCER_ID", false),
        74: ("FENCED_LEADER_EPOCH", true),
        75: ("UNKNOWN_LEADER_EPOCH", true),
        76: ("UNSUPPORTED_COMPRESSION_TYPE", false),
        79: ("MEMBER_ID_REQUIRED", false),
        81: ("GROUP_MAX_SIZE_REACHED", false),
        87: ("INVALID_RECORD", false),
    ]

    /// Kafka's name for the code, or `ERROR_<n>` for one outside the table.
    public var name: String { Self.table[rawValue]?.name ?? "ERROR_\(rawValue)" }
    public var isRetriable: Bool { Self.table[rawValue]?.retriable ?? false }
    public var isError: Bool { rawValue != 0 }
    public var description: String { "\(name) (\(rawValue))" }
}
