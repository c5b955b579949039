import NIOCore

/// JoinGroup (key 11), v0–5.
public struct JoinGroupRequest: KafkaRequestMessage {
    public typealias Response = JoinGroupResponse
    public static let apiKey = KafkaAPIKey.joinGroup

    public struct GroupProtocol: Hashable, Sendable {
        public var name: String
        /// Opaque to the broker (ConsumerProtocolSubscription for consumers).
        public var metadata: ByteBuffer

        public init(name: String, metadata: ByteBuffer) {
            self.name = name
            self.metadata = metadata
        }
    }

    public var groupId: String
    public var sessionTimeoutMs: Int32
    /// v1+; at v0 the session timeout doubles as the rebalance timeout.
    public var rebalanceTimeoutMs: Int32
    /// "" for a new member.
    public var memberId: String
    /// v5+; static membership (not used by the target clients).
    public var groupInstanceId: String?
    public var protocolType: String
    public var protocols: [GroupProtocol]

    public init(
        groupId: String, sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32 = -1, memberId: String = "",
        groupInstanceId: String? = nil, protocolType: String = "consumer", protocols: [GroupProtocol]
    ) {
        self.groupId = groupId
        self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.protocolType = protocolType
        self.protocols = protocols
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        groupId = try reader.readString("group_id")
        sessionTimeoutMs = try reader.readInt32("session_timeout_ms")
        rebalanceTimeoutMs = version >= 1 ? try reader.readInt32("rebalance_timeout_ms") : -1
        memberId = try reader.readString("member_id")
        groupInstanceId = version >= 5 ? try reader.readNullableString("group_instance_id") : nil
        protocolType = try reader.readString("protocol_type")
        protocols = try reader.readArray("protocols") { (reader) throws(KafkaProtocolError) in
            GroupProtocol(name: try reader.readString("protocol name"), metadata: try reader.readBytes("protocol metadata"))
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(groupId)
        writer.writeInt32(sessionTimeoutMs)
        if version >= 1 { writer.writeInt32(rebalanceTimeoutMs) }
        writer.writeString(memberId)
        if version >= 5 { writer.writeNullableString(groupInstanceId) }
        writer.writeString(protocolType)
        writer.writeArray(protocols) { writer, item in
            writer.writeString(item.name)
            writer.writeBytes(item.metadata)
        }
    }
}

public struct JoinGroupResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.joinGroup

    public struct Member: Hashable, Sendable {
        public var memberId: String
        /// v5+.
        public var groupInstanceId: String?
        public var metadata: ByteBuffer

        public init(memberId: String, groupInstanceId: String? = nil, metadata: ByteBuffer) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
            self.metadata = metadata
        }
    }

    /// v2+.
    public var throttleTimeMs: Int32
    public var errorCode: KafkaErrorCode
    public var generationId: Int32
    /// Never empty on success: librdkafka rejects an empty protocol name (§5).
    public var protocolName: String
    public var leader: String
    public var memberId: String
    /// Only the leader receives the members.
    public var members: [Member]

    public init(
        throttleTimeMs: Int32 = 0, errorCode: KafkaErrorCode = .none, generationId: Int32 = -1, protocolName: String = "",
        leader: String = "", memberId: String = "", members: [Member] = []
    ) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.generationId = generationId
        self.protocolName = protocolName
        self.leader = leader
        self.memberId = memberId
        self.members = members
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 2 ? try reader.readInt32("throttle_time_ms") : 0
        errorCode = try reader.readErrorCode()
        generationId = try reader.readInt32("generation_id")
        protocolName = try reader.readString("protocol_name")
        leader = try reader.readString("leader")
        memberId = try reader.readString("member_id")
        members = try reader.readArray("members") { (reader) throws(KafkaProtocolError) in
            Member(
                memberId: try reader.readString("member_id"),
                groupInstanceId: version >= 5 ? try reader.readNullableString("group_instance_id") : nil,
                metadata: try reader.readBytes("metadata"))
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 2 { writer.writeInt32(throttleTimeMs) }
        writer.writeErrorCode(errorCode)
        writer.writeInt32(generationId)
        writer.writeString(protocolName)
        writer.writeString(leader)
        writer.writeString(memberId)
        writer.writeArray(members) { writer, member in
            writer.writeString(member.memberId)
            if version >= 5 { writer.writeNullableString(member.groupInstanceId) }
            writer.writeBytes(member.metadata)
        }
    }
}
