import NIOCore

/// FindCoordinator (key 10), v0–2. v0–3 carry the coordinator in top-level fields, not an array (P1).
public struct FindCoordinatorRequest: KafkaRequestMessage {
    public typealias Response = FindCoordinatorResponse
    public static let apiKey = KafkaAPIKey.findCoordinator

    /// 0 = group, 1 = transaction.
    public static let groupKeyType: Int8 = 0

    public var key: String
    /// v1+.
    public var keyType: Int8

    public init(key: String, keyType: Int8 = FindCoordinatorRequest.groupKeyType) {
        self.key = key
        self.keyType = keyType
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        key = try reader.readString("key")
        keyType = version >= 1 ? try reader.readInt8("key_type") : 0
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeString(key)
        if version >= 1 { writer.writeInt8(keyType) }
    }
}

public struct FindCoordinatorResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.findCoordinator

    /// v1+.
    public var throttleTimeMs: Int32
    public var errorCode: KafkaErrorCode
    /// v1+.
    public var errorMessage: String?
    public var nodeId: Int32
    public var host: String
    public var port: Int32

    public init(throttleTimeMs: Int32 = 0, errorCode: KafkaErrorCode = .none, errorMessage: String? = nil, nodeId: Int32, host: String, port: Int32) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.nodeId = nodeId
        self.host = host
        self.port = port
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = version >= 1 ? try reader.readInt32("throttle_time_ms") : 0
        errorCode = try reader.readErrorCode()
        errorMessage = version >= 1 ? try reader.readNullableString("error_message") : nil
        nodeId = try reader.readInt32("node_id")
        host = try reader.readString("host")
        port = try reader.readInt32("port")
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        if version >= 1 { writer.writeInt32(throttleTimeMs) }
        writer.writeErrorCode(errorCode)
        if version >= 1 { writer.writeNullableString(errorMessage) }
        writer.writeInt32(nodeId)
        writer.writeString(host)
        writer.writeInt32(port)
    }
}
