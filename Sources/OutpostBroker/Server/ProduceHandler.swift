import Logging
import NIOCore
import OutpostCore
import OutpostKafka
import OutpostLog

/// Produce: validation (kafka-subset.md §3), idempotent append per partition (§4), and for acks=all the
/// wait for the commit (`PartitionReplica.whenCommitted`), bounded by the request's timeout.
struct ProduceHandler: Sendable {
    let topics: TopicRegistry
    let limits: BrokerLimits
    let batchBytesMax: Int
    let metrics: BrokerMetrics
    let logger: Logger
    /// Refused batches are normal retry outcomes for a misconfigured producer; log them at a bounded rate.
    let logLimiter = LogRateLimiter(perSecond: 10)

    /// Where one partition's batch ended up before any commit wait.
    enum PartitionResult {
        case error(KafkaErrorCode)
        /// Appended or a duplicate: answer with `baseOffset` once `lastOffset` is committed.
        case stored(replica: any PartitionReplica, baseOffset: Offset, lastOffset: Offset, logStartOffset: Offset)
    }

    /// nil for acks=0 (no response at all, §2.1). Appends happen before this returns, so a connection's
    /// produce requests are appended in the order they arrived.
    func produce(_ request: ProduceRequest, version: Int16, on eventLoop: any EventLoop) -> EventLoopFuture<ProduceResponse?> {
        var results: [(topic: String, partitions: [(index: Int32, result: PartitionResult)])] = []
        let requestError: KafkaErrorCode? =
            if ![-1, 0, 1].contains(request.acks) { .invalidRequiredAcks }
            else if request.transactionalId != nil { .invalidRequest }  // transactions are not supported
            else { nil }
        for topic in request.topics {
            var partitions: [(Int32, PartitionResult)] = []
            let lookup: TopicRegistry.Lookup = requestError == nil ? topics.topic(named: topic.name, autoCreate: true) : .unknown
            for partition in topic.partitions {
                if let requestError {
                    partitions.append((partition.partitionIndex, .error(requestError)))
                    continue
                }
                switch lookup {
                case .found(let found):
                    guard let target = found.partition(partition.partitionIndex) else {
                        partitions.append((partition.partitionIndex, .error(.unknownTopicOrPartition)))
                        continue
                    }
                    partitions.append((partition.partitionIndex, append(partition.records, to: target, version: version)))
                case .unknown:
                    partitions.append((partition.partitionIndex, .error(.unknownTopicOrPartition)))
                case .invalidName:
                    partitions.append((partition.partitionIndex, .error(.invalidTopicException)))
                case .unavailable:
                    partitions.append((partition.partitionIndex, .error(.leaderNotAvailable)))
                }
            }
            results.append((topic.name, partitions))
        }
        if request.acks == 0 { return eventLoop.makeSucceededFuture(nil) }

        // Answer each partition: at once for acks=1 and errors, after the commit for acks=all.
        var answers: [EventLoopFuture<ProduceResponse.Partition>] = []
        var shape: [(String, Int)] = []
        for (topic, partitions) in results {
            shape.append((topic, partitions.count))
            for (index, result) in partitions {
                switch result {
                case .error(let code):
                    answers.append(eventLoop.makeSucceededFuture(ProduceResponse.Partition(partitionIndex: index, errorCode: code)))
                case .stored(let replica, let base, let last, let logStart):
                    let answer = ProduceResponse.Partition(
                        partitionIndex: index, errorCode: .none, baseOffset: base.rawValue, logStartOffset: logStart.rawValue)
                    if request.acks == 1 {
                        answers.append(eventLoop.makeSucceededFuture(answer))
                    } else {
                        answers.append(
                            commitWait(replica: replica, through: last, timeoutMs: request.timeoutMs, on: eventLoop).map { code in
                                var committed = answer
                                if code != .none {
                                    committed.errorCode = code
                                    committed.baseOffset = -1
                                }
                                return committed
                            })
                    }
                }
            }
        }
        let layout = shape
        return EventLoopFuture.whenAllSucceed(answers, on: eventLoop).map { flat in
            var position = 0
            var topics: [ProduceResponse.Topic] = []
            for (name, count) in layout {
                topics.append(ProduceResponse.Topic(name: name, partitions: Array(flat[position..<(position + count)])))
                position += count
            }
            return ProduceResponse(topics: topics)
        }
    }

    /// Validates one partition's records (§3) and appends them.
    func append(_ records: ByteBuffer?, to partition: BrokerPartition, version: Int16) -> PartitionResult {
        guard partition.replica.isLeader else { return .error(.notLeaderOrFollower) }
        guard let records, records.readableBytes > 0 else { return .error(.invalidRecord) }
        guard records.readableBytes <= batchBytesMax else {
            metrics.produceRejected(reason: "too_large")
            return .error(.messageTooLarge)
        }
        let bytes = Array(records.readableBytesView)
        var iterator = RecordBatchIterator(bytes)
        var headers: [RecordBatchHeader] = []
        while let (header, _) = iterator.next() { headers.append(header) }
        if let reason = iterator.stopReason {
            metrics.produceRejected(reason: "corrupt")
            logger.debug("produce rejected", metadata: ["partition": "\(partition.id)", "reason": "\(reason)"])
            return .error(reason.isCorruption ? .corruptMessage : .invalidRecord)
        }
        // Produce v3+ carries exactly one batch per partition (AK ProduceRequest.validateRecords).
        guard let header = headers.first, version < 3 || headers.count == 1 else {
            metrics.produceRejected(reason: "batch_count")
            return .error(.invalidRecord)
        }
        for header in headers {
            // A producer batch numbers its records densely; control and transactional batches need
            // transaction support this broker does not have.
            guard header.recordCount >= 1, Int64(header.lastOffsetDelta) == Int64(header.recordCount) - 1,
                !header.isControl, !header.isTransactional
            else {
                metrics.produceRejected(reason: "invalid_record")
                return .error(.invalidRecord)
            }
        }
        if headers.count > 1 {
            // v0–2 only: several non-idempotent batches appended together.
            guard headers.allSatisfy({ !$0.producer.isIdempotent }) else { return .error(.invalidRecord) }
        }
        switch partition.append(batch: bytes, header: header) {
        case .appended(let result):
            metrics.produced(records: headers.reduce(0) { $0 + Int($1.recordCount) }, bytes: result.bytes)
            return .stored(
                replica: partition.replica, baseOffset: result.firstOffset, lastOffset: result.lastOffset,
                logStartOffset: partition.replica.logStartOffset)
        case .duplicate(let original):
            metrics.produceDuplicate()
            return .stored(
                replica: partition.replica, baseOffset: original.firstOffset, lastOffset: original.lastOffset,
                logStartOffset: partition.replica.logStartOffset)
        case .rejected(let code, let reason):
            metrics.produceRejected(reason: code.name.lowercased())
            if let suppressed = logLimiter.admit() {
                let metadata: Logger.Metadata = ["partition": "\(partition.id)", "error": "\(code)", "detail": "\(reason)", "suppressed": "\(suppressed)"]
                if code == .outOfOrderSequenceNumber || code == .invalidProducerEpoch {
                    logger.info("produce refused by idempotence rules", metadata: metadata)
                } else {
                    logger.warning("append failed", metadata: metadata)
                }
            }
            return .error(code)
        }
    }

    /// NONE once `offset` is committed, the storage error if it cannot be, REQUEST_TIMED_OUT if the
    /// request's timeout passes first (the batch stays appended, as in Kafka).
    func commitWait(replica: any PartitionReplica, through offset: Offset, timeoutMs: Int32, on eventLoop: any EventLoop) -> EventLoopFuture<KafkaErrorCode> {
        let promise = eventLoop.makePromise(of: KafkaErrorCode.self)
        let done = NIOLoopBoundBox(false, eventLoop: eventLoop)
        let timer = eventLoop.scheduleTask(in: .milliseconds(Int64(max(0, timeoutMs)))) {
            guard !done.value else { return }
            done.value = true
            promise.succeed(.requestTimedOut)
        }
        replica.whenCommitted(through: offset) { result in
            let code: KafkaErrorCode =
                switch result {
                case .success: .none
                case .failure(let error): BrokerPartition.errorCode(for: error)
                }
            eventLoop.execute {
                guard !done.value else { return }
                done.value = true
                timer.cancel()
                promise.succeed(code)
            }
        }
        return promise.futureResult
    }
}
