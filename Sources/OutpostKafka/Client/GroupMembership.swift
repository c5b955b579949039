import NIOCore

/// Settings of one consumer-group membership.
public struct GroupMembershipConfiguration: Hashable, Sendable {
    public var groupId: String
    /// Topics subscribed to; the range assignor splits their partitions among the members.
    public var topics: [String]
    /// The coordinator removes a member it has not heard from for this long (Kafka's session.timeout.ms;
    /// 10 s detects a dead gateway or monitor quickly while tolerating a GC-free Swift process easily).
    public var sessionTimeout: Duration
    /// How long the coordinator waits for every member to rejoin during a rebalance (Kafka's
    /// max.poll.interval.ms plays this role; 60 s leaves room for commits on revoke).
    public var rebalanceTimeout: Duration
    /// Heartbeat period; at most a third of the session timeout so two may be lost (Kafka: 3 s).
    public var heartbeatInterval: Duration
    /// Waits before retrying a failed group request: 100 ms doubling to 2 s, with jitter.
    public var retryBackoff: KafkaBackoffPolicy

    public init(
        groupId: String, topics: [String], sessionTimeout: Duration = .seconds(10), rebalanceTimeout: Duration = .seconds(60),
        heartbeatInterval: Duration = .seconds(3), retryBackoff: KafkaBackoffPolicy = KafkaBackoffPolicy(initial: .milliseconds(100), maximum: .seconds(2))
    ) {
        precondition(!groupId.isEmpty, "a group needs an id")
        precondition(heartbeatInterval > .zero && heartbeatInterval < sessionTimeout, "heartbeats must come more often than the session times out")
        self.groupId = groupId
        self.topics = topics
        self.sessionTimeout = sessionTimeout
        self.rebalanceTimeout = rebalanceTimeout
        self.heartbeatInterval = heartbeatInterval
        self.retryBackoff = retryBackoff
    }
}

/// One member's view of the classic consumer-group protocol (kafka-subset.md §5, the client side), as a
/// pure state machine in the style of hummingbird's connection state machine: events come in as method
/// calls, what must happen comes out as `Action`s, time is read from the injected clock, and the driver
/// (`KafkaGroupConsumer`) does the I/O and arms the one timer.
///
/// ```
/// idle ─start→ joining ─(FindCoordinator, JoinGroup)→ assigning (leader) ─→ syncing ─SyncGroup→ stable
///                 ↑                                   syncing (follower) ──┘                   │
///                 └────────── revokeCompleted ←── revoking ←─ Heartbeat: REBALANCE_IN_PROGRESS ┘
/// close: stable → revoking → leaving ─LeaveGroup→ closed
/// ```
/// Eager rebalancing, as the range assignor implies: on a rebalance the member gives up all its
/// partitions (`revoke`, during which the application commits), then rejoins.
public struct GroupMembership<C: Clock>: Sendable where C.Duration == Duration, C: Sendable {
    public enum Phase: String, Hashable, Sendable {
        case idle
        /// Finding the coordinator and waiting for JoinGroup.
        case joining
        /// Leader only: the driver computes the assignment.
        case assigning
        case syncing
        case stable
        /// The application is giving its partitions up (and committing).
        case revoking
        case leaving
        case closed
        case failed
    }

    public enum Action: Hashable, Sendable {
        /// Look the coordinator up, then call `coordinatorFound()` or `requestFailed(_:)`.
        case findCoordinator
        case sendJoin(JoinGroupRequest)
        /// Leader only: assign the partitions of the members' subscriptions (`RangeAssignor`), then call
        /// `assignmentComputed(_:)` (or `requestFailed(_:)` if metadata could not be had).
        case computeAssignment(protocolName: String, members: [JoinGroupResponse.Member])
        case sendSync(SyncGroupRequest)
        case sendHeartbeat(HeartbeatRequest)
        case sendLeave(LeaveGroupRequest)
        /// Call `timerFired()` at `deadline`, replacing any earlier timer.
        case scheduleTimer(deadline: C.Instant)
        case cancelTimer
        /// The member owns these partitions in this generation: start consuming them.
        case assigned(generation: Int32, partitions: [KafkaTopicPartition])
        /// Stop consuming these partitions, commit what was consumed, then call `revokeCompleted()`.
        case revoke([KafkaTopicPartition])
        /// The membership cannot continue.
        case failed(KafkaClientError)
        /// Left the group (or never joined); nothing more will happen.
        case closed
    }

    /// The request whose answer is awaited (at most one at a time).
    enum Outstanding: Hashable, Sendable {
        case findCoordinator
        case join
        case sync
        case heartbeat
        case leave
    }

    /// What the timer is for.
    enum TimerPurpose: Hashable, Sendable {
        case heartbeat
        case retryFindCoordinator
        case retryJoin
    }

    public let configuration: GroupMembershipConfiguration
    let clock: C
    public private(set) var phase: Phase = .idle
    /// "" until the coordinator gave one.
    public private(set) var memberId = ""
    public private(set) var generationId: Int32 = -1
    public private(set) var isLeader = false
    /// The partitions owned in the current generation (empty outside `stable`/`revoking`).
    public private(set) var assignment: [KafkaTopicPartition] = []
    private var outstanding: Outstanding?
    private var timer: (deadline: C.Instant, purpose: TimerPurpose)?
    private var lastHeartbeatAnswer: C.Instant?
    private var leaveAfterRevoke = false
    private var backoff: ReconnectBackoff

    public init(configuration: GroupMembershipConfiguration, clock: C, jitter: KafkaJitterGenerator) {
        self.configuration = configuration
        self.clock = clock
        self.backoff = ReconnectBackoff(policy: configuration.retryBackoff, generator: jitter)
    }

    /// The generation and member id an OffsetCommit must carry, while the member owns partitions.
    public var commitIdentity: (generationId: Int32, memberId: String)? {
        guard phase == .stable || phase == .revoking, !memberId.isEmpty, generationId >= 0 else { return nil }
        return (generationId, memberId)
    }

    // MARK: Events

    public mutating func start() -> [Action] {
        guard phase == .idle else { return [] }
        phase = .joining
        return findCoordinator()
    }

    public mutating func coordinatorFound() -> [Action] {
        guard outstanding == .findCoordinator else { return [] }
        outstanding = nil
        switch phase {
        case .joining:
            return sendJoin()
        case .stable:
            let deadline = clock.now.advanced(by: configuration.heartbeatInterval)
            timer = (deadline, .heartbeat)
            return sendHeartbeat() + [.scheduleTimer(deadline: deadline)]
        default:
            return []
        }
    }

    public mutating func joinCompleted(_ response: JoinGroupResponse) -> [Action] {
        guard outstanding == .join, phase == .joining else { return [] }
        outstanding = nil
        switch response.errorCode {
        case .none:
            backoff.succeeded()
            memberId = response.memberId
            generationId = response.generationId
            isLeader = response.leader == response.memberId
            if isLeader {
                phase = .assigning
                return [.computeAssignment(protocolName: response.protocolName, members: response.members)]
            }
            phase = .syncing
            return sendSync(assignments: [])
        case .memberIdRequired:
            // KIP-394: the coordinator assigned an id; join again with it, at once.
            memberId = response.memberId
            return sendJoin()
        case .unknownMemberId:
            memberId = ""
            return sendJoin()
        case .rebalanceInProgress, .illegalGeneration:
            return retry(.retryJoin)
        case let code where Self.coordinatorMoved(code):
            return retry(.retryFindCoordinator)
        case let code:
            return fail(.groupFailed(group: configuration.groupId, code))
        }
    }

    /// The leader's assignment, one entry per member (empty assignments included).
    public mutating func assignmentComputed(_ assignments: [SyncGroupRequest.Assignment]) -> [Action] {
        guard phase == .assigning else { return [] }
        phase = .syncing
        return sendSync(assignments: assignments)
    }

    public mutating func syncCompleted(_ response: SyncGroupResponse) -> [Action] {
        guard outstanding == .sync, phase == .syncing else { return [] }
        outstanding = nil
        switch response.errorCode {
        case .none:
            let decoded: ConsumerProtocolAssignment
            do {
                decoded = try ConsumerProtocolAssignment.decode(response.assignment)
            } catch {
                // The leader's bytes are not a consumer-protocol assignment.
                return fail(.groupFailed(group: configuration.groupId, .inconsistentGroupProtocol))
            }
            backoff.succeeded()
            phase = .stable
            assignment = decoded.partitions.filter { configuration.topics.contains($0.topic) }
            let now = clock.now
            lastHeartbeatAnswer = now
            let deadline = now.advanced(by: configuration.heartbeatInterval)
            timer = (deadline, .heartbeat)
            return [.assigned(generation: generationId, partitions: assignment), .scheduleTimer(deadline: deadline)]
        case .unknownMemberId:
            memberId = ""
            phase = .joining
            return sendJoin()
        case .rebalanceInProgress, .illegalGeneration:
            phase = .joining
            return sendJoin()
        case let code where Self.coordinatorMoved(code):
            phase = .joining
            return retry(.retryFindCoordinator)
        case let code:
            return fail(.groupFailed(group: configuration.groupId, code))
        }
    }

    public mutating func heartbeatCompleted(_ code: KafkaErrorCode) -> [Action] {
        guard outstanding == .heartbeat else { return [] }
        outstanding = nil
        guard phase == .stable else { return [] }
        switch code {
        case .none:
            backoff.succeeded()
            lastHeartbeatAnswer = clock.now
            return []
        case .rebalanceInProgress, .illegalGeneration:
            return startRevoke()
        case .unknownMemberId:
            // The coordinator dropped this member (session expired): commits would be refused.
            memberId = ""
            generationId = -1
            return startRevoke()
        case let code where Self.coordinatorMoved(code):
            return retry(.retryFindCoordinator)
        case let code:
            return fail(.groupFailed(group: configuration.groupId, code))
        }
    }

    public mutating func leaveCompleted() -> [Action] {
        guard outstanding == .leave else { return [] }
        outstanding = nil
        return finishClosing()
    }

    /// A request (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup) failed without an answer,
    /// or the leader could not compute the assignment.
    public mutating func requestFailed(_ error: KafkaClientError) -> [Action] {
        if phase == .assigning {
            phase = .joining
            return retry(.retryJoin)
        }
        guard let failed = outstanding else { return [] }
        outstanding = nil
        switch failed {
        case .leave:
            return finishClosing()
        case .findCoordinator, .join:
            return retry(.retryFindCoordinator)
        case .sync:
            phase = .joining
            return retry(.retryFindCoordinator)
        case .heartbeat:
            return phase == .stable ? retry(.retryFindCoordinator) : []
        }
    }

    /// The application gave the revoked partitions up (and committed).
    public mutating func revokeCompleted() -> [Action] {
        guard phase == .revoking else { return [] }
        assignment = []
        if leaveAfterRevoke { return leave() }
        phase = .joining
        return sendJoin()
    }

    public mutating func timerFired() -> [Action] {
        guard let scheduled = timer else { return [] }
        let now = clock.now
        guard now >= scheduled.deadline else { return [.scheduleTimer(deadline: scheduled.deadline)] }
        timer = nil
        switch scheduled.purpose {
        case .retryFindCoordinator:
            return outstanding == nil ? findCoordinator() : []
        case .retryJoin:
            return phase == .joining && outstanding == nil ? sendJoin() : []
        case .heartbeat:
            guard phase == .stable else { return [] }
            if let last = lastHeartbeatAnswer, last.duration(to: now) > configuration.sessionTimeout {
                // No answer for a whole session: the coordinator has dropped this member by now.
                memberId = ""
                generationId = -1
                outstanding = nil
                return startRevoke()
            }
            let deadline = now.advanced(by: configuration.heartbeatInterval)
            timer = (deadline, .heartbeat)
            if outstanding == nil {
                return sendHeartbeat() + [.scheduleTimer(deadline: deadline)]
            }
            return [.scheduleTimer(deadline: deadline)]
        }
    }

    /// Leave the group: revoke (so the application commits) if partitions are owned, then LeaveGroup.
    public mutating func close() -> [Action] {
        leaveAfterRevoke = true
        switch phase {
        case .idle, .closed, .failed:
            phase = .closed
            return [.cancelTimer, .closed]
        case .stable:
            return startRevoke()
        case .revoking, .leaving:
            return []
        case .joining, .assigning, .syncing:
            return leave()
        }
    }

    // MARK: Steps

    private mutating func findCoordinator() -> [Action] {
        outstanding = .findCoordinator
        return [.findCoordinator]
    }

    private mutating func sendJoin() -> [Action] {
        outstanding = .join
        let subscription = ConsumerProtocolSubscription(topics: configuration.topics.sorted())
        let request = JoinGroupRequest(
            groupId: configuration.groupId, sessionTimeoutMs: Self.milliseconds(configuration.sessionTimeout),
            rebalanceTimeoutMs: Self.milliseconds(configuration.rebalanceTimeout), memberId: memberId, protocolType: "consumer",
            protocols: [.init(name: RangeAssignor.protocolName, metadata: subscription.encoded())])
        return [.sendJoin(request)]
    }

    private mutating func sendSync(assignments: [SyncGroupRequest.Assignment]) -> [Action] {
        outstanding = .sync
        return [.sendSync(SyncGroupRequest(groupId: configuration.groupId, generationId: generationId, memberId: memberId, assignments: assignments))]
    }

    private mutating func sendHeartbeat() -> [Action] {
        outstanding = .heartbeat
        return [.sendHeartbeat(HeartbeatRequest(groupId: configuration.groupId, generationId: generationId, memberId: memberId))]
    }

    private mutating func startRevoke() -> [Action] {
        phase = .revoking
        timer = nil
        return [.cancelTimer, .revoke(assignment)]
    }

    private mutating func leave() -> [Action] {
        timer = nil
        assignment = []
        guard !memberId.isEmpty else { return [.cancelTimer] + finishClosing() }
        phase = .leaving
        outstanding = .leave
        return [.cancelTimer, .sendLeave(LeaveGroupRequest(groupId: configuration.groupId, memberId: memberId))]
    }

    private mutating func finishClosing() -> [Action] {
        phase = .closed
        memberId = ""
        generationId = -1
        return [.closed]
    }

    private mutating func retry(_ purpose: TimerPurpose) -> [Action] {
        let deadline = clock.now.advanced(by: backoff.failed())
        timer = (deadline, purpose)
        return [.scheduleTimer(deadline: deadline)]
    }

    private mutating func fail(_ error: KafkaClientError) -> [Action] {
        phase = .failed
        timer = nil
        outstanding = nil
        assignment = []
        return [.cancelTimer, .failed(error)]
    }

    static func coordinatorMoved(_ code: KafkaErrorCode) -> Bool {
        code == .notCoordinator || code == .coordinatorNotAvailable || code == .coordinatorLoadInProgress
    }

    static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = duration.components
        return Int32(clamping: seconds * 1_000 + attoseconds / 1_000_000_000_000_000)
    }
}
