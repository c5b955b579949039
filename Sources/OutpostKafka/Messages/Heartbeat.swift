import NIOCore

/// Heartbeat (key 12), v0–3.
public struct HeartbeatRequest: KafkaRequestMessage {
    public typealias Response = HeartbeatResponse
    public static let apiKey = KafkaAPIKey.heartbeat

    public var groupId: String
    public var generationId: Int32
    public var memberId: String
    /// v3+.
    public var groupInstanceId: String?

    public init(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String? = nil) {
        self.groupId = groupId
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        groupId = try reader.readString("group_id")
        generationId = try reader.readInt32("generation_id")
        memberId = try reader.readString("member_id")
        groupInstanceId = version >= 3 ? try reader.readNullableString("group_instance_id") : nil
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(groupId)
        writer.writeInt32(generationId)
        writer.writeString(memberId)
        if version >= 3 { writer.writeNullableString(groupInstanceId) }
    }
}

public struct HeartbeatResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.heartbeat

    /// v1+.
    public var throttleTimeMs: Int32
    public var errorCode: KafkaErrorCode

    public init(throttleTimeMs: Int32 = 0, errorCode: KafkaErrorCode) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 1 ? try reader.readInt32("throttle_time_ms") : 0
        errorCode = try reader.readErrorCode()
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 1 { writer.writeInt32(throttleTimeMs) }
        writer.writeErrorCode(errorCode)
    }
}

/// LeaveGroup (key 13), v0–1: one member per request (v3+ switched to a members array).
public struct LeaveGroupRequest: KafkaRequestMessage {
    public typealias Response = LeaveGroupResponse
    public static let apiKey = KafkaAPIKey.leaveGroup

    public var groupId: String
    public var memberId: String

    public init(groupId: String, memberId: String) {
        self.groupId = groupId
        self.memberId = memberId
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        groupId = try reader.readString("group_id")
        memberId = try reader.readString("member_id")
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(groupId)
        writer.writeString(memberId)
    }
}

public struct LeaveGroupResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.leaveGroup

    /// v1+.
    public var throttleTimeMs: Int32
    public var errorCode: KafkaErrorCode

    public init(throttleTimeMs: Int32 = 0, errorCode: KafkaErrorCode) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 1 ? try reader.readInt32("throttle_time_ms") : 0
        errorCode = try reader.readErrorCode()
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 1 { writer.writeInt32(throttleTimeMs) }
        writer.writeErrorCode(errorCode)
    }
}
