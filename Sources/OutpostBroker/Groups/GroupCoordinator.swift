import Foundation
import Logging
import NIOCore
import OutpostKafka
import Synchronization

/// Runs every consumer group this broker coordinates: feeds requests to each group's
/// `GroupStateMachine` and carries out its actions — parked JoinGroup/SyncGroup answers, one timer per
/// group — and keeps committed offsets, persisted through `OffsetStore` before a commit is acknowledged.
///
/// Shared by every connection (clients reach the coordinator over a second connection, §2.1): one lock
/// guards all groups; promises are completed and timers armed outside the state machine.
public final class GroupCoordinator: Sendable {
    typealias Machine = GroupStateMachine<ContinuousClock>

    struct Group {
        var machine: Machine
        var offsets: [TopicPartition: CommittedOffset]
        var timer: Scheduled<Void>?
    }

    enum Parked {
        case join(EventLoopPromise<JoinGroupResponse>)
        case sync(EventLoopPromise<SyncGroupResponse>)
    }

    struct State {
        var groups: [String: Group] = [:]
        var parked: [ParkedRequestID: Parked] = [:]
        var nextParkedId: UInt64 = 0
        var stopped = false
    }

    let configuration: GroupConfiguration
    let policy: GroupPolicy
    let timerLoop: any EventLoop
    let store: OffsetStore
    let logger: Logger
    let clock = ContinuousClock()
    private let state = Mutex(State())

    public init(configuration: GroupConfiguration, store: OffsetStore, timerLoop: any EventLoop, logger: Logger) {
        self.configuration = configuration
        self.policy = GroupPolicy(configuration)
        self.timerLoop = timerLoop
        self.store = store
        self.logger = logger
        let loaded = store.loadAll()
        state.withLock { state in
            for (id, offsets) in loaded {
                state.groups[id] = Group(machine: Machine(groupId: id, policy: policy, clock: clock), offsets: offsets, timer: nil)
            }
        }
        if !loaded.isEmpty {
            logger.info("committed offsets loaded", metadata: ["groups": "\(loaded.count)", "offsets": "\(loaded.values.map(\.count).reduce(0, +))"])
        }
    }

    /// Work to do once the lock is released.
    struct Effects {
        var joins: [(EventLoopPromise<JoinGroupResponse>, JoinGroupResponse)] = []
        var syncs: [(EventLoopPromise<SyncGroupResponse>, SyncGroupResponse)] = []
        var logs: [(String, Logger.Metadata)] = []

        func run(logger: Logger) {
            for (promise, response) in joins { promise.succeed(response) }
            for (promise, response) in syncs { promise.succeed(response) }
            for (message, metadata) in logs { logger.info("\(message)", metadata: metadata) }
        }
    }

    /// Applies a machine's actions to the group `id` (lock held).
    private func apply(_ actions: [Machine.Action], group id: String, state: inout State, effects: inout Effects) {
        for action in actions {
            switch action {
            case .completeJoin(let request, let response):
                if case .join(let promise) = state.parked.removeValue(forKey: request) { effects.joins.append((promise, response)) }
            case .completeSync(let request, let response):
                if case .sync(let promise) = state.parked.removeValue(forKey: request) { effects.syncs.append((promise, response)) }
            case .scheduleTimeout(let deadline):
                state.groups[id]?.timer?.cancel()
                guard !state.stopped else { continue }
                let delay = clock.now.duration(to: deadline)
                let nanoseconds = max(Int64(0), delay.components.seconds * 1_000_000_000 + delay.components.attoseconds / 1_000_000_000)
                state.groups[id]?.timer = timerLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { [weak self] in
                    self?.timeoutFired(group: id)
                }
            case .cancelTimeout:
                state.groups[id]?.timer?.cancel()
                state.groups[id]?.timer = nil
            case .memberRemoved(let memberId, let reason):
                effects.logs.append((
                    "group member removed",
                    ["group": "\(id.sanitizedForLog())", "member": "\(memberId.sanitizedForLog())", "reason": "\(reason.rawValue)"]
                ))
            case .rebalanceCompleted(let generation, let members, let protocolName):
                effects.logs.append((
                    "group rebalanced",
                    ["group": "\(id.sanitizedForLog())", "generation": "\(generation)", "members": "\(members)", "protocol": "\(protocolName.sanitizedForLog())"]
                ))
            }
        }
        // A group with no members and no offsets is forgotten, so the group table stays bounded.
        if let group = state.groups[id], group.machine.isEmpty, group.machine.state == .empty, group.offsets.isEmpty {
            group.timer?.cancel()
            state.groups[id] = nil
        }
    }

    private func park(_ parked: Parked, state: inout State) -> ParkedRequestID {
        state.nextParkedId += 1
        let id = ParkedRequestID(state.nextParkedId)
        state.parked[id] = parked
        return id
    }

    /// The group, created empty if new and the table has room.
    private func group(_ id: String, create: Bool, state: inout State) -> Bool {
        if state.groups[id] != nil { return true }
        guard create, state.groups.count < configuration.groupsMax else { return false }
        state.groups[id] = Group(machine: Machine(groupId: id, policy: policy, clock: clock), offsets: [:], timer: nil)
        return true
    }

    // MARK: Requests

    public func join(_ request: JoinGroupRequest, clientId: String, on eventLoop: any EventLoop) -> EventLoopFuture<JoinGroupResponse> {
        guard !request.groupId.isEmpty else {
            return eventLoop.makeSucceededFuture(JoinGroupResponse(errorCode: .invalidGroupId, memberId: request.memberId))
        }
        let promise = eventLoop.makePromise(of: JoinGroupResponse.self)
        let memberId = "\(clientId.isEmpty ? "member" : clientId)-\(UUID().uuidString.lowercased())"
        var effects = Effects()
        let accepted = state.withLock { state -> Bool in
            guard !state.stopped, group(request.groupId, create: true, state: &state) else { return false }
            let token = park(.join(promise), state: &state)
            let actions = state.groups[request.groupId]?.machine.join(
                Machine.JoinInput(request: request, clientId: clientId), newMemberId: memberId, request: token) ?? []
            apply(actions, group: request.groupId, state: &state, effects: &effects)
            return true
        }
        effects.run(logger: logger)
        if !accepted { promise.succeed(JoinGroupResponse(errorCode: .coordinatorNotAvailable, memberId: request.memberId)) }
        return promise.futureResult
    }

    public func sync(_ request: SyncGroupRequest, on eventLoop: any EventLoop) -> EventLoopFuture<SyncGroupResponse> {
        let promise = eventLoop.makePromise(of: SyncGroupResponse.self)
        var effects = Effects()
        let immediate = state.withLock { state -> SyncGroupResponse? in
            guard state.groups[request.groupId] != nil else { return SyncGroupResponse(errorCode: .unknownMemberId) }
            let token = park(.sync(promise), state: &state)
            guard let outcome = state.groups[request.groupId]?.machine.sync(
                memberId: request.memberId, generationId: request.generationId, assignments: request.assignments, request: token)
            else { return SyncGroupResponse(errorCode: .unknownMemberId) }
            switch outcome {
            case .answer(let response):
                state.parked[token] = nil
                return response
            case .actions(let actions):
                apply(actions, group: request.groupId, state: &state, effects: &effects)
                return nil
            }
        }
        effects.run(logger: logger)
        if let immediate { promise.succeed(immediate) }
        return promise.futureResult
    }

    public func heartbeat(_ request: HeartbeatRequest) -> HeartbeatResponse {
        var effects = Effects()
        let code = state.withLock { state -> KafkaErrorCode in
            guard let (code, actions) = state.groups[request.groupId]?.machine.heartbeat(
                memberId: request.memberId, generationId: request.generationId)
            else { return .unknownMemberId }
            apply(actions, group: request.groupId, state: &state, effects: &effects)
            return code
        }
        effects.run(logger: logger)
        return HeartbeatResponse(errorCode: code)
    }

    public func leave(_ request: LeaveGroupRequest) -> LeaveGroupResponse {
        var effects = Effects()
        let code = state.withLock { state -> KafkaErrorCode in
            guard let (code, actions) = state.groups[request.groupId]?.machine.leave(memberId: request.memberId) else {
                return .unknownMemberId
            }
            apply(actions, group: request.groupId, state: &state, effects: &effects)
            return code
        }
        effects.run(logger: logger)
        return LeaveGroupResponse(errorCode: code)
    }

    /// Validates and stores a commit, answering once the group's offsets file is durable. `partitionExists`
    /// keeps commits to topics that do not exist out (Kafka answers UNKNOWN_TOPIC_OR_PARTITION), which also
    /// bounds what a group can store.
    public func commit(
        _ request: OffsetCommitRequest, nowMilliseconds: Int64, on eventLoop: any EventLoop,
        partitionExists: (TopicPartition) -> Bool
    ) -> EventLoopFuture<OffsetCommitResponse> {
        func uniform(_ code: KafkaErrorCode) -> OffsetCommitResponse {
            OffsetCommitResponse(topics: request.topics.map { topic in
                .init(name: topic.name, partitions: topic.partitions.map { .init(partitionIndex: $0.partitionIndex, errorCode: code) })
            })
        }
        guard !request.groupId.isEmpty, OffsetStore.fileName(for: request.groupId) != nil else {
            return eventLoop.makeSucceededFuture(uniform(.invalidGroupId))
        }
        var codes: [TopicPartition: KafkaErrorCode] = [:]
        for topic in request.topics {
            for partition in topic.partitions {
                let id = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                if !partitionExists(id) {
                    codes[id] = .unknownTopicOrPartition
                } else if (partition.committedMetadata?.utf8.count ?? 0) > configuration.offsetMetadataBytesMax {
                    codes[id] = .offsetMetadataTooLarge
                }
            }
        }
        var effects = Effects()
        let outcome = state.withLock { state -> (KafkaErrorCode, [TopicPartition: CommittedOffset]?) in
            guard !state.stopped, group(request.groupId, create: true, state: &state) else { return (.coordinatorNotAvailable, nil) }
            guard let (code, actions) = state.groups[request.groupId]?.machine.validateCommit(
                memberId: request.memberId, generationId: request.generationId)
            else { return (.coordinatorNotAvailable, nil) }
            var snapshot: [TopicPartition: CommittedOffset]?
            if code == .none {
                for topic in request.topics {
                    for partition in topic.partitions {
                        let id = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                        guard codes[id] == nil else { continue }
                        state.groups[request.groupId]?.offsets[id] = CommittedOffset(
                            offset: partition.committedOffset, leaderEpoch: partition.committedLeaderEpoch,
                            metadata: partition.committedMetadata ?? "", commitTimestampMilliseconds: nowMilliseconds)
                        snapshot = state.groups[request.groupId]?.offsets
                    }
                }
            }
            apply(actions, group: request.groupId, state: &state, effects: &effects)
            return (code, snapshot)
        }
        effects.run(logger: logger)
        let (groupCode, snapshot) = outcome
        let rejected = codes
        let response: @Sendable (Bool) -> OffsetCommitResponse = { storageFailed in
            OffsetCommitResponse(topics: request.topics.map { topic in
                .init(name: topic.name, partitions: topic.partitions.map { partition in
                    let id = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                    let code = groupCode != .none ? groupCode : (rejected[id] ?? (storageFailed ? .coordinatorNotAvailable : .none))
                    return .init(partitionIndex: partition.partitionIndex, errorCode: code)
                })
            })
        }
        guard let snapshot else { return eventLoop.makeSucceededFuture(response(false)) }
        let promise = eventLoop.makePromise(of: OffsetCommitResponse.self)
        store.persist(group: request.groupId, offsets: snapshot) { result in
            if case .failure = result { promise.succeed(response(true)) } else { promise.succeed(response(false)) }
        }
        return promise.futureResult
    }

    public func fetchOffsets(_ request: OffsetFetchRequest) -> OffsetFetchResponse {
        let offsets = state.withLock { $0.groups[request.groupId]?.offsets ?? [:] }
        let topics: [OffsetFetchResponse.Topic]
        if let requested = request.topics {
            topics = requested.map { topic in
                .init(name: topic.name, partitions: topic.partitionIndexes.map { index in
                    guard let committed = offsets[TopicPartition(topic: topic.name, partition: index)] else {
                        return .init(partitionIndex: index, committedOffset: -1, metadata: "")
                    }
                    return .init(
                        partitionIndex: index, committedOffset: committed.offset, committedLeaderEpoch: committed.leaderEpoch,
                        metadata: committed.metadata)
                })
            }
        } else {
            let byTopic = Dictionary(grouping: offsets.keys, by: \.topic)
            topics = byTopic.keys.sorted().map { name in
                .init(name: name, partitions: (byTopic[name] ?? []).sorted().compactMap { id in
                    guard let committed = offsets[id] else { return nil }
                    return .init(
                        partitionIndex: id.partition, committedOffset: committed.offset, committedLeaderEpoch: committed.leaderEpoch,
                        metadata: committed.metadata)
                })
            }
        }
        return OffsetFetchResponse(topics: topics)
    }

    // MARK: Time and shutdown

    private func timeoutFired(group id: String) {
        var effects = Effects()
        state.withLock { state in
            guard !state.stopped, let actions = state.groups[id]?.machine.timeoutFired() else { return }
            state.groups[id]?.timer = nil
            apply(actions, group: id, state: &state, effects: &effects)
        }
        effects.run(logger: logger)
    }

    /// A snapshot of one group for tests and diagnostics.
    public func describe(group id: String) -> (state: String, generation: Int32, members: [String], leader: String?)? {
        state.withLock { state in
            guard let machine = state.groups[id]?.machine else { return nil }
            return (machine.state.rawValue, machine.generationId, machine.memberOrder, machine.leaderId)
        }
    }

    /// Cancels timers and answers every parked request (COORDINATOR_NOT_AVAILABLE) so connections can close.
    public func stop() {
        let parked = state.withLock { state -> [Parked] in
            state.stopped = true
            for group in state.groups.values { group.timer?.cancel() }
            defer { state.parked.removeAll() }
            return Array(state.parked.values)
        }
        for request in parked {
            switch request {
            case .join(let promise): promise.succeed(JoinGroupResponse(errorCode: .coordinatorNotAvailable))
            case .sync(let promise): promise.succeed(SyncGroupResponse(errorCode: .coordinatorNotAvailable))
            }
        }
        store.drain()
    }
}
