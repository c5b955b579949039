import NIOCore

/// InitProducerId (key 22), v0–1.
public struct InitProducerIdRequest: KafkaRequestMessage {
    public typealias Response = InitProducerIdResponse
    public static let apiKey = KafkaAPIKey.initProducerId

    /// nil for an idempotent (non-transactional) producer.
    public var transactionalId: String?
    public var transactionTimeoutMs: Int32

    public init(transactionalId: String? = nil, transactionTimeoutMs: Int32 = -1) {
        self.transactionalId = transactionalId
        self.transactionTimeoutMs = transactionTimeoutMs
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        transactionalId = try reader.readNullableString("transactional_id")
        transactionTimeoutMs = try reader.readInt32("transaction_timeout_ms")
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeNullableString(transactionalId)
        writer.writeInt32(transactionTimeoutMs)
    }
}

public struct InitProducerIdResponse: KafkaResponseMessage {
    public static let apiKey = KafkaAPIKey.initProducerId

    public var throttleTimeMs: Int32
    public var errorCode: KafkaErrorCode
    public var producerId: Int64
    public var producerEpoch: Int16

    public init(throttleTimeMs: Int32 = 0, errorCode: KafkaErrorCode = .none, producerId: Int64, producerEpoch: Int16) {
        self.throttleTimeMs = throttleTimeMs
        self.errorCode = errorCode
        self.producerId = producerId
        self.producerEpoch = producerEpoch
    }

    public init(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) {
        throttleTimeMs = try reader.readInt32("throttle_time_ms")
        errorCode = try reader.readErrorCode()
        producerId = try reader.readInt64("producer_id")
        producerEpoch = try reader.readInt16("producer_epoch")
    }

    public func encode(to writer: inout KafkaWriter, version: Int16) {
        writer.writeInt32(throttleTimeMs)
        writer.writeErrorCode(errorCode)
        writer.writeInt64(producerId)
        writer.writeInt16(producerEpoch)
    }
}
