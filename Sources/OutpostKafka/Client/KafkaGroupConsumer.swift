import Logging
import NIOCore
import OutpostCore

/// A consumer-group member that consumes what the group assigns it: `GroupMembership` decides, this actor
/// carries its actions out (FindCoordinator, JoinGroup, range assignment when leader, SyncGroup,
/// heartbeats on a timer, OffsetFetch to position new partitions, commit on revoke, LeaveGroup on close)
/// and fetches the owned partitions with a `KafkaConsumer`.
///
/// Offsets: `poll()` hands out records and remembers, per partition, the offset after the last record
/// handed out; `commit()` commits those. With `commitOnRevoke` (the default) they are also committed when
/// a rebalance takes partitions away and on `close()`, so the next owner starts where this one stopped.
/// A rebalance while a poll is under way discards that poll's records (the new owner reads them).
public actor KafkaGroupConsumer {
    public struct Configuration: Sendable {
        public var membership: GroupMembershipConfiguration
        public var consumer: KafkaConsumer.Configuration
        /// Where a partition without a committed offset starts (Kafka's auto.offset.reset).
        public var startWithoutCommittedOffset: KafkaOffsetSpec
        public var commitOnRevoke: Bool

        public init(
            membership: GroupMembershipConfiguration, consumer: KafkaConsumer.Configuration = KafkaConsumer.Configuration(),
            startWithoutCommittedOffset: KafkaOffsetSpec = .earliest, commitOnRevoke: Bool = true
        ) {
            self.membership = membership
            self.consumer = consumer
            self.startWithoutCommittedOffset = startWithoutCommittedOffset
            self.commitOnRevoke = commitOnRevoke
        }
    }

    /// What happened to the membership, for logs, metrics and tests.
    public enum Event: Hashable, Sendable {
        case assigned(generation: Int32, partitions: [KafkaTopicPartition])
        case revoked([KafkaTopicPartition])
        case failed(KafkaClientError)
        case left
    }

    public nonisolated let client: KafkaClient
    public nonisolated let configuration: Configuration
    nonisolated let logger: Logger
    public nonisolated var unownedExecutor: UnownedSerialExecutor { client.unownedExecutor }
    /// Membership events. Bounded: holds the newest 256; older unread events are dropped.
    public nonisolated let events: AsyncStream<Event>
    private let eventSink: AsyncStream<Event>.Continuation

    private var membership: GroupMembership<ContinuousClock>
    private let consumer: KafkaConsumer
    private var lane: KafkaConnectionLane?
    private var coordinator: KafkaBrokerAddress?
    private var timer: Scheduled<Void>?
    /// Partitions positioned and being consumed, and the offset after the last record handed out.
    private var consumed: [KafkaTopicPartition: Offset] = [:]
    /// Bumped on every assignment change; a poll that straddles one is discarded.
    private var assignmentEpoch: UInt64 = 0
    private var failure: KafkaClientError?
    private var started = false
    private var closeWaiters: [CheckedContinuation<Void, Never>] = []
    private var isClosed = false

    public init(client: KafkaClient, configuration: Configuration, logger: Logger? = nil) {
        self.client = client
        self.configuration = configuration
        self.logger = logger ?? client.logger
        self.consumer = KafkaConsumer(client: client, configuration: configuration.consumer, logger: logger)
        let seed = client.configuration.effectiveJitterSeed ^ KafkaJitterGenerator.seed(from: configuration.membership.groupId)
        self.membership = GroupMembership(configuration: configuration.membership, clock: ContinuousClock(), jitter: KafkaJitterGenerator(seed: seed))
        (events, eventSink) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(256))
    }

    // MARK: Public state

    /// The partitions this member owns and consumes now.
    public var assignment: [KafkaTopicPartition] { consumed.keys.sorted() }
    public var generationId: Int32 { membership.generationId }
    public var memberId: String { membership.memberId }
    public var isLeader: Bool { membership.isLeader }
    public var phase: GroupMembership<ContinuousClock>.Phase { membership.phase }
    /// The offset after the last record handed out, per owned partition (what `commit()` commits).
    public var positions: [KafkaTopicPartition: Offset] { consumed }

    // MARK: Lifecycle

    /// Joins the group (in the background; `poll()` returns records once partitions are assigned).
    public func start() async {
        guard !started else { return }
        started = true
        lane = await client.makeDedicatedLane()
        perform(membership.start())
    }

    /// Commits (with `commitOnRevoke`), leaves the group and closes this member's connections. Waits for
    /// the LeaveGroup answer (bounded by the request timeout).
    public func close() async {
        guard !isClosed else { return }
        if membership.phase != .closed {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                closeWaiters.append(continuation)
                perform(membership.close())
            }
        }
        isClosed = true
        timer?.cancel()
        await consumer.close()
        if let lane { await client.closeConnections(on: lane) }
        eventSink.finish()
    }

    // MARK: Consuming

    /// Records from the owned partitions: one fetch round (long poll). Before the first assignment, and
    /// while a rebalance is under way, returns an empty array after a short wait.
    public nonisolated func poll() async throws(KafkaClientError) -> [KafkaFetchedRecords] {
        let epoch = try await pollableEpoch()
        guard let epoch else {
            try? await Task.sleep(for: min(configuration.consumer.maxWait, .milliseconds(100)))
            return []
        }
        let fetched = try await consumer.poll()
        return await accept(fetched, epoch: epoch)
    }

    private func pollableEpoch() throws(KafkaClientError) -> UInt64? {
        if let failure { throw failure }
        guard !isClosed else { throw .closed }
        guard membership.phase == .stable, !consumed.isEmpty else { return nil }
        return assignmentEpoch
    }

    private func accept(_ fetched: [KafkaFetchedRecords], epoch: UInt64) async -> [KafkaFetchedRecords] {
        guard epoch == assignmentEpoch else {
            // The assignment changed under this poll: hand nothing out, and put the fetch positions back
            // where consumption stands.
            for (partition, offset) in consumed { await consumer.seek(partition, to: offset) }
            return []
        }
        var accepted: [KafkaFetchedRecords] = []
        for batch in fetched where consumed[batch.partition] != nil {
            consumed[batch.partition] = batch.nextOffset
            accepted.append(batch)
        }
        return accepted
    }

    /// Commits the offset after the last record handed out, for every owned partition.
    public func commit() async throws(KafkaClientError) {
        try await commit(consumed)
    }

    /// Commits explicit offsets (the offset of the next record to read, per partition).
    public func commit(_ offsets: [KafkaTopicPartition: Offset]) async throws(KafkaClientError) {
        guard !offsets.isEmpty else { return }
        guard let identity = membership.commitIdentity else { throw .notAGroupMember(group: configuration.membership.groupId) }
        let connection = try await coordinatorConnection()
        let topics = Dictionary(grouping: offsets.keys, by: \.topic).sorted { $0.key < $1.key }.map { topic, partitions in
            OffsetCommitRequest.Topic(
                name: topic,
                partitions: partitions.sorted().map { OffsetCommitRequest.Partition(partitionIndex: $0.partition, committedOffset: offsets[$0]?.rawValue ?? 0) })
        }
        let request = OffsetCommitRequest(
            groupId: configuration.membership.groupId, generationId: identity.generationId, memberId: identity.memberId, topics: topics)
        let response = try await client.value(connection.send(request), from: connection)
        for topic in response.topics {
            for partition in topic.partitions where partition.errorCode != .none {
                switch partition.errorCode {
                case .illegalGeneration, .unknownMemberId, .rebalanceInProgress:
                    throw .notAGroupMember(group: configuration.membership.groupId)
                case let code:
                    if GroupMembership<ContinuousClock>.coordinatorMoved(code) { coordinator = nil }
                    throw .broker(code, context: "OffsetCommit \(topic.name)-\(partition.partitionIndex)")
                }
            }
        }
    }

    /// The group's committed offsets for `partitions` (nil where none is committed).
    public func committedOffsets(_ partitions: [KafkaTopicPartition]) async throws(KafkaClientError) -> [KafkaTopicPartition: Offset?] {
        let connection = try await coordinatorConnection()
        let topics = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { topic, members in
            OffsetFetchRequest.Topic(name: topic, partitionIndexes: members.map(\.partition).sorted())
        }
        let response = try await client.value(connection.send(OffsetFetchRequest(groupId: configuration.membership.groupId, topics: topics)), from: connection)
        guard response.errorCode == .none else {
            if GroupMembership<ContinuousClock>.coordinatorMoved(response.errorCode) { coordinator = nil }
            throw .broker(response.errorCode, context: "OffsetFetch")
        }
        var result: [KafkaTopicPartition: Offset?] = [:]
        for topic in response.topics {
            for partition in topic.partitions {
                let key = KafkaTopicPartition(topic: topic.name, partition: partition.partitionIndex)
                guard partition.errorCode == .none else { throw .broker(partition.errorCode, context: "OffsetFetch \(key)") }
                result[key] = partition.committedOffset >= 0 ? Offset(partition.committedOffset) : nil
            }
        }
        return result
    }

    // MARK: Carrying out the membership's actions

    private func perform(_ actions: [GroupMembership<ContinuousClock>.Action]) {
        for action in actions {
            switch action {
            case .findCoordinator:
                Task {
                    do throws(KafkaClientError) {
                        let node = try await client.findCoordinator(group: configuration.membership.groupId)
                        coordinator = node.address
                        perform(membership.coordinatorFound())
                    } catch {
                        perform(membership.requestFailed(error))
                    }
                }
            case .sendJoin(let request):
                let timeout = configuration.membership.rebalanceTimeout + client.configuration.connection.requestTimeout
                exchange(request, timeout: timeout) { member, response in member.membership.joinCompleted(response) }
            case .computeAssignment(let protocolName, let members):
                Task {
                    do throws(KafkaClientError) {
                        perform(membership.assignmentComputed(try await assignments(protocolName: protocolName, members: members)))
                    } catch {
                        logger.warning("group assignment failed", metadata: ["group": "\(configuration.membership.groupId)", "error": "\(error)"])
                        perform(membership.requestFailed(error))
                    }
                }
            case .sendSync(let request):
                let timeout = configuration.membership.rebalanceTimeout + client.configuration.connection.requestTimeout
                exchange(request, timeout: timeout) { member, response in member.membership.syncCompleted(response) }
            case .sendHeartbeat(let request):
                exchange(request, timeout: nil) { member, response in member.membership.heartbeatCompleted(response.errorCode) }
            case .sendLeave(let request):
                Task {
                    // On the control lane: this member's own lane may hold a JoinGroup the broker parks.
                    do throws(KafkaClientError) {
                        let connection = try await client.connection(to: try await coordinatorAddress(), lane: .control)
                        _ = try await client.value(connection.send(request), from: connection)
                        perform(membership.leaveCompleted())
                    } catch {
                        perform(membership.requestFailed(error))
                    }
                }
            case .scheduleTimer(let deadline):
                timer?.cancel()
                let delay = ContinuousClock().now.duration(to: deadline)
                timer = client.eventLoop.scheduleTask(in: TimeAmount(max(delay, .zero))) {
                    self.assumeIsolated { $0.perform($0.membership.timerFired()) }
                }
            case .cancelTimer:
                timer?.cancel()
                timer = nil
            case .assigned(let generation, let partitions):
                assignmentEpoch += 1
                let epoch = assignmentEpoch
                Task { await position(partitions, generation: generation, epoch: epoch) }
            case .revoke(let partitions):
                assignmentEpoch += 1
                Task { await revoke(partitions) }
            case .failed(let error):
                failure = error
                logger.error("group membership failed", metadata: ["group": "\(configuration.membership.groupId)", "error": "\(error)"])
                eventSink.yield(.failed(error))
                resumeCloseWaiters()
            case .closed:
                eventSink.yield(.left)
                resumeCloseWaiters()
            }
        }
    }

    private func resumeCloseWaiters() {
        let waiters = closeWaiters
        closeWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    /// Sends a group request on this member's coordinator connection and feeds the answer (or the
    /// failure) to the membership.
    private func exchange<Request: KafkaRequestMessage>(
        _ request: Request, timeout: Duration?,
        _ answer: @escaping @Sendable (isolated KafkaGroupConsumer, Request.Response) -> [GroupMembership<ContinuousClock>.Action]
    ) {
        Task {
            do throws(KafkaClientError) {
                let connection = try await coordinatorConnection()
                let response = try await client.value(connection.send(request, timeout: timeout), from: connection)
                perform(answer(self, response))
            } catch {
                if error.invalidatesMetadata { coordinator = nil }
                perform(membership.requestFailed(error))
            }
        }
    }

    private func coordinatorAddress() async throws(KafkaClientError) -> KafkaBrokerAddress {
        if let coordinator { return coordinator }
        let node = try await client.findCoordinator(group: configuration.membership.groupId)
        coordinator = node.address
        return node.address
    }

    private func coordinatorConnection() async throws(KafkaClientError) -> KafkaConnection {
        let lane: KafkaConnectionLane
        if let existing = self.lane {
            lane = existing
        } else {
            lane = await client.makeDedicatedLane()
            self.lane = lane
        }
        return try await client.connection(to: try await coordinatorAddress(), lane: lane)
    }

    /// The leader's job: every member's subscription, the partition counts, the range assignor.
    private func assignments(protocolName: String, members: [JoinGroupResponse.Member]) async throws(KafkaClientError) -> [SyncGroupRequest.Assignment] {
        guard protocolName == RangeAssignor.protocolName else {
            throw .groupFailed(group: configuration.membership.groupId, .inconsistentGroupProtocol)
        }
        var subscriptions: [String: [String]] = [:]
        for member in members {
            do {
                subscriptions[member.memberId] = try ConsumerProtocolSubscription.decode(member.metadata).topics
            } catch {
                logger.warning("unreadable subscription; member gets nothing", metadata: ["member": "\(member.memberId)", "error": "\(error)"])
                subscriptions[member.memberId] = []
            }
        }
        var counts: [String: Int] = [:]
        for topic in Set(subscriptions.values.flatMap { $0 }).sorted() {
            do {
                counts[topic] = try await client.partitions(of: topic).count
            } catch .unknownTopicOrPartition {
                counts[topic] = 0
            }
        }
        let assigned = RangeAssignor.assign(subscriptions: subscriptions, partitionCounts: counts)
        logger.debug("assigned partitions as leader", metadata: ["assignment": "\(assigned)"])
        return members.map { member in
            SyncGroupRequest.Assignment(
                memberId: member.memberId, assignment: ConsumerProtocolAssignment(partitions: assigned[member.memberId] ?? []).encoded())
        }
    }

    /// A new assignment: position each partition at its committed offset (or the configured start), then
    /// consume it.
    private func position(_ partitions: [KafkaTopicPartition], generation: Int32, epoch: UInt64) async {
        var positions: [KafkaTopicPartition: Offset] = [:]
        var backoff = ReconnectBackoff(policy: configuration.membership.retryBackoff, generator: KafkaJitterGenerator(seed: UInt64(generation) &+ epoch))
        while epoch == assignmentEpoch, !partitions.isEmpty {
            do {
                let committed = try await committedOffsets(partitions)
                let missing = partitions.filter { (committed[$0] ?? nil) == nil }
                let starts = missing.isEmpty ? [:] : try await client.listOffsets(missing, spec: configuration.startWithoutCommittedOffset)
                for partition in partitions {
                    positions[partition] = (committed[partition] ?? nil) ?? starts[partition] ?? Offset(0)
                }
                break
            } catch {
                if error == .closed { return }
                let wait = backoff.failed()
                logger.info("could not position assigned partitions", metadata: ["error": "\(error)", "retry_in": "\(wait)"])
                try? await Task.sleep(for: wait)
            }
        }
        guard epoch == assignmentEpoch else { return }
        consumed = positions
        await consumer.unassignAll()
        await consumer.assign(positions)
        logger.info("partitions assigned", metadata: ["group": "\(configuration.membership.groupId)", "generation": "\(generation)", "partitions": "\(partitions)"])
        eventSink.yield(.assigned(generation: generation, partitions: partitions))
    }

    /// A rebalance (or close) takes the partitions: stop fetching them, commit, hand them back.
    private func revoke(_ partitions: [KafkaTopicPartition]) async {
        let owned = consumed
        consumed.removeAll()
        await consumer.unassignAll()
        if configuration.commitOnRevoke, !owned.isEmpty {
            do {
                try await commit(owned)
            } catch {
                logger.warning("commit on revoke failed", metadata: ["group": "\(configuration.membership.groupId)", "error": "\(error)"])
            }
        }
        if !partitions.isEmpty {
            logger.info("partitions revoked", metadata: ["group": "\(configuration.membership.groupId)", "partitions": "\(partitions)"])
        }
        eventSink.yield(.revoked(partitions))
        perform(membership.revokeCompleted())
    }
}
