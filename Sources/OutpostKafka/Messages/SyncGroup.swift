import NIOCore

/// SyncGroup (key 14), v0–3.
public struct SyncGroupRequest: KafkaRequestMessage {
    public typealias Response = SyncGroupResponse
    public static let apiKey = KafkaAPIKey.syncGroup

    public struct Assignment: Hashable, Sendable {
        public var memberId: String
        /// Opaque to the broker (ConsumerProtocolAssignment for consumers).
        public var assignment: ByteBuffer

        public init(memberId: String, assignment: ByteBuffer) {
            self.memberId = memberId
            self.assignment = assignment
        }
    }

    public var groupId: String
    public var generationId: Int32
    public var memberId: String
    /// v3+.
    public var groupInstanceId: String?
    /// The leader's assignment for every member; empty from followers.
    public var assignments: [Assignment]

    public init(groupId: String, generationId: Int32, memberId: String, groupInstanceId: String? = nil, assignments: [Assignment]) {
        self.groupId = groupId
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.assignments = assignments
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        groupId = try reader.readString("group_id")
        generationId = try reader.readInt32("generation_id")
        memberId = try reader.readString("member_id")
        groupInstanceId = version >= 3 ? try reader.readNullableString("group_instance_id") : nil
        assignments = try reader.readArray("assignments") { (reader) throws(KafkaProtocolError) in
            Assignment(memberId: try reader.readString("member_id"), assignment: try reader.readBytes("assignment"))
        }
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(groupId)
        writer.writeInt32(generationId)
        writer.writeString(memberId)
        if version >= 3 { writer.writeNullableString(groupInstanceId) }
        writer.writeArray(assignments) { writer, assignment in
            writer.writeString(assignment.memberId)
            writer.writeBytes(assignment.assignment)
        }
    }
}

public struct SyncGroupResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.syncGroup

    /// v1+.
    public var throttleTimeMs: Int32
    public var errorCode: KafkaErrorCode
    public var assignment: ByteBuffer

    public init(throttleTimeMs: Int32 = 0, errorCode: KafkaErrorCode = .none, assignment: ByteBuffer = ByteBuffer()) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.assignment = assignment
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 1 ? try reader.readInt32("throttle_time_ms") : 0
        errorCode = try reader.readErrorCode()
        assignment = try reader.readBytes("assignment")
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 1 { writer.writeInt32(throttleTimeMs) }
        writer.writeErrorCode(errorCode)
        writer.writeBytes(assignment)
    }
}
