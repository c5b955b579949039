import Logging
import NIOCore
import NIOPosix
import OutpostCore
import OutpostKafka
import OutpostLog
import Synchronization

/// Fetch with long poll (kafka-subset.md P3–P7): reads whole stored batches up to the partition and
/// response byte limits (always at least one batch, so a consumer can make progress); when fewer than
/// `min_bytes` are available it parks until a high watermark it reads moves or `max_wait_ms` passes, and
/// never longer. Reads run on the I/O thread pool; the event loop only parks and answers.
final class FetchHandler: Sendable {
    let topics: TopicRegistry
    let threadPool: NIOThreadPool
    let limits: BrokerLimits
    let metrics: BrokerMetrics
    let logger: Logger
    private let parkedCount = Atomic<Int>(0)
    /// Fetches parked now, for tests and diagnostics.
    var parkedFetches: Int { parkedCount.load(ordering: .relaxed) }
    private let nextWaiterId = Atomic<UInt64>(0)
    /// Every parked fetch's wake-up, so `stop` can answer them all (an unanswered promise must not outlive
    /// the event loops).
    private let parked = Mutex<(stopped: Bool, wakers: [UInt64: @Sendable () -> Void])>((false, [:]))

    init(topics: TopicRegistry, threadPool: NIOThreadPool, limits: BrokerLimits, metrics: BrokerMetrics, logger: Logger) {
        self.topics = topics
        self.threadPool = threadPool
        self.limits = limits
        self.metrics = metrics
        self.logger = logger
    }

    /// One requested partition, resolved.
    struct Target: Sendable {
        var request: FetchRequest.Partition
        var partition: BrokerPartition?
        var error: KafkaErrorCode?
    }

    /// The outcome of one read pass.
    struct Pass: Sendable {
        var response: FetchResponse
        var bytes: Int
        var hasError: Bool
        /// The high watermark each read partition had, to park against.
        var observed: [(BrokerPartition, Offset)]
    }

    func fetch(_ request: FetchRequest, on eventLoop: any EventLoop) -> EventLoopFuture<FetchResponse> {
        let plan: [(String, [Target])] = request.topics.map { topic in
            let found = topics.topic(named: topic.name)
            return (topic.name, topic.partitions.map { partition in
                guard let found else { return Target(request: partition, partition: nil, error: .unknownTopicOrPartition) }
                guard let target = found.partition(partition.partition) else {
                    return Target(request: partition, partition: nil, error: .unknownTopicOrPartition)
                }
                guard target.replica.isLeader else { return Target(request: partition, partition: nil, error: .notLeaderOrFollower) }
                return Target(request: partition, partition: target, error: nil)
            })
        }
        let maxBytes = request.maxBytes > 0 ? Int(request.maxBytes) : 0
        let deadline = NIODeadline.now() + .milliseconds(Int64(max(0, request.maxWaitMs)))
        let promise = eventLoop.makePromise(of: FetchResponse.self)
        attempt(plan: plan, maxBytes: maxBytes, minBytes: Int(request.minBytes), deadline: deadline, promise: promise, eventLoop: eventLoop)
        return promise.futureResult
    }

    /// Reads; answers if satisfied (or out of time, or on any error), else parks.
    private func attempt(
        plan: [(String, [Target])], maxBytes: Int, minBytes: Int, deadline: NIODeadline, promise: EventLoopPromise<FetchResponse>,
        eventLoop: any EventLoop
    ) {
        threadPool.runIfActive(eventLoop: eventLoop) { [self] in
            read(plan: plan, maxBytes: maxBytes)
        }.whenComplete { [self] result in
            switch result {
            case .failure(let error):
                // The pool is shut down: the broker is stopping.
                promise.fail(error)
            case .success(let pass):
                let satisfied = pass.bytes >= max(1, minBytes) || pass.hasError || pass.observed.isEmpty
                if satisfied || NIODeadline.now() >= deadline {
                    metrics.fetched(bytes: pass.bytes)
                    promise.succeed(pass.response)
                } else {
                    park(pass, plan: plan, maxBytes: maxBytes, minBytes: minBytes, deadline: deadline, promise: promise, eventLoop: eventLoop)
                }
            }
        }
    }

    /// Waits for any read partition's high watermark to move, or the deadline; then reads again.
    private func park(
        _ pass: Pass, plan: [(String, [Target])], maxBytes: Int, minBytes: Int, deadline: NIODeadline,
        promise: EventLoopPromise<FetchResponse>, eventLoop: any EventLoop
    ) {
        guard parkedCount.add(1, ordering: .relaxed).newValue <= limits.fetchWaitersMax else {
            // At the bound: answer now (empty) rather than queue without limit.
            parkedCount.subtract(1, ordering: .relaxed)
            metrics.fetchWaitersExhausted()
            promise.succeed(pass.response)
            return
        }
        let waiterId = nextWaiterId.add(1, ordering: .relaxed).newValue
        let fired = OnceFlag()
        let partitions = pass.observed.map(\.0)
        let once: @Sendable () -> Void = { [self] in
            guard fired.claim() else { return }
            parkedCount.subtract(1, ordering: .relaxed)
            _ = parked.withLock { $0.wakers.removeValue(forKey: waiterId) }
            for partition in partitions { partition.removeWaiter(id: waiterId) }
            eventLoop.execute { [self] in
                attempt(plan: plan, maxBytes: maxBytes, minBytes: minBytes, deadline: deadline, promise: promise, eventLoop: eventLoop)
            }
        }
        let timer = eventLoop.scheduleTask(deadline: deadline) { once() }
        let wake: @Sendable () -> Void = { [self] in
            timer.cancel()
            _ = parked.withLock { $0.wakers.removeValue(forKey: waiterId) }
            once()
        }
        let stopped = parked.withLock { parked in
            if !parked.stopped { parked.wakers[waiterId] = wake }
            return parked.stopped
        }
        if stopped {
            wake()
            return
        }
        for (partition, observed) in pass.observed {
            if !partition.addWaiter(id: waiterId, observedHighWatermark: observed, wake: wake) {
                // It moved between the read and now: read again at once.
                wake()
                return
            }
        }
    }

    /// Answers every parked fetch now (they read once more) and parks no more: the broker is stopping.
    func stop() {
        let wakers = parked.withLock { parked in
            parked.stopped = true
            defer { parked.wakers.removeAll() }
            return Array(parked.wakers.values)
        }
        for wake in wakers { wake() }
    }

    /// One read pass over every requested partition, in request order, sharing the response byte budget.
    /// Blocking (file reads): runs on the thread pool.
    func read(plan: [(String, [Target])], maxBytes: Int) -> Pass {
        var remaining = maxBytes
        var total = 0
        var hasError = false
        var observed: [(BrokerPartition, Offset)] = []
        var topicsOut: [FetchResponse.Topic] = []
        let allocator = ByteBufferAllocator()
        for (name, targets) in plan {
            var partitionsOut: [FetchResponse.Partition] = []
            for target in targets {
                let index = target.request.partition
                guard let partition = target.partition else {
                    hasError = true
                    partitionsOut.append(.init(partitionIndex: index, errorCode: target.error ?? .unknownTopicOrPartition, highWatermark: -1, records: ByteBuffer()))
                    continue
                }
                let replica = partition.replica
                let highWatermark = replica.highWatermark
                let logStart = replica.logStartOffset
                var out = FetchResponse.Partition(
                    partitionIndex: index, highWatermark: highWatermark.rawValue, lastStableOffset: highWatermark.rawValue,
                    logStartOffset: logStart.rawValue, records: ByteBuffer())
                let epoch = target.request.currentLeaderEpoch
                if epoch >= 0 && epoch != replica.leaderEpoch {
                    out.errorCode = epoch < replica.leaderEpoch ? .fencedLeaderEpoch : .unknownLeaderEpoch
                    hasError = true
                    partitionsOut.append(out)
                    continue
                }
                let offset = Offset(target.request.fetchOffset)
                if offset < logStart || offset > replica.logEndOffset {
                    out.errorCode = .offsetOutOfRange
                    hasError = true
                    partitionsOut.append(out)
                    continue
                }
                observed.append((partition, highWatermark))
                let limit = max(0, min(Int(target.request.partitionMaxBytes), remaining))
                // Past the response budget only the first partition with data may still get one batch.
                if offset >= highWatermark || (total > 0 && limit == 0) {
                    partitionsOut.append(out)
                    continue
                }
                do {
                    let data = try replica.read(from: offset, maxBytes: max(limit, 1))
                    // A lone batch larger than the limit is only sent when nothing else is (KIP-74).
                    if data.batchCount > 0 && (total == 0 || data.bytes.count <= limit) {
                        var buffer = allocator.buffer(capacity: data.bytes.count)
                        buffer.writeBytes(data.bytes)
                        out.records = buffer
                        total += data.bytes.count
                        remaining = max(0, remaining - data.bytes.count)
                    }
                    let latest = replica.highWatermark
                    out.highWatermark = latest.rawValue
                    out.lastStableOffset = latest.rawValue
                } catch .offsetOutOfRange {
                    out.errorCode = .offsetOutOfRange
                    hasError = true
                } catch {
                    logger.error("fetch read failed", metadata: ["partition": "\(partition.id)", "error": "\(error)"])
                    out.errorCode = BrokerPartition.errorCode(for: error)
                    hasError = true
                }
                partitionsOut.append(out)
            }
            topicsOut.append(FetchResponse.Topic(name: name, partitions: partitionsOut))
        }
        return Pass(response: FetchResponse(topics: topicsOut), bytes: total, hasError: hasError, observed: observed)
    }
}

/// True for exactly one caller of `claim()`: whichever of wake-up and timeout comes first.
final class OnceFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func claim() -> Bool { !flag.exchange(true, ordering: .acquiringAndReleasing) }
}
