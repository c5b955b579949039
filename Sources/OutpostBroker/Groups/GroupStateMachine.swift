import NIOCore
import OutpostKafka

/// Identifies a JoinGroup or SyncGroup request the state machine holds unanswered ("parked"). The driver
/// maps it to the connection's promise.
public struct ParkedRequestID: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "#\(rawValue)" }
}

/// Timing and size bounds of a group.
public struct GroupPolicy: Hashable, Sendable {
    public var initialRebalanceDelay: Duration
    public var minSessionTimeout: Duration
    public var maxSessionTimeout: Duration
    public var membersMax: Int

    public init(initialRebalanceDelay: Duration, minSessionTimeout: Duration, maxSessionTimeout: Duration, membersMax: Int) {
        self.initialRebalanceDelay = initialRebalanceDelay
        self.minSessionTimeout = minSessionTimeout
        self.maxSessionTimeout = maxSessionTimeout
        self.membersMax = membersMax
    }

    public init(_ configuration: GroupConfiguration) {
        self.init(
            initialRebalanceDelay: .milliseconds(configuration.initialRebalanceDelayMilliseconds),
            minSessionTimeout: .milliseconds(configuration.minSessionTimeoutMilliseconds),
            maxSessionTimeout: .milliseconds(configuration.maxSessionTimeoutMilliseconds),
            membersMax: configuration.membersPerGroupMax)
    }
}

/// One consumer group's membership, as a pure state machine (kafka-subset.md §5, after Kafka's
/// `GroupMetadata`/`GroupCoordinator`; the shape follows hummingbird's connection state machine).
///
/// Empty → PreparingRebalance → CompletingRebalance → Stable, and back to PreparingRebalance on a join, a
/// leave or a session timeout. Events come in as method calls; what must happen comes out as `Action`s:
/// answer a parked JoinGroup or SyncGroup, (re)arm or cancel the one timer. Time is read from the
/// injected clock only, so tests drive it with a manual clock; the driver (`GroupCoordinator`) does the
/// I/O. Requests that can be answered at once return their answer directly.
public struct GroupStateMachine<C: Clock>: Sendable where C.Duration == Duration, C: Sendable {
    public enum State: String, Hashable, Sendable {
        case empty = "Empty"
        case preparingRebalance = "PreparingRebalance"
        case completingRebalance = "CompletingRebalance"
        case stable = "Stable"
    }

    public enum Action: Sendable, Hashable {
        case completeJoin(ParkedRequestID, JoinGroupResponse)
        case completeSync(ParkedRequestID, SyncGroupResponse)
        /// Call `timeoutFired()` at `deadline` (replacing any earlier timer).
        case scheduleTimeout(deadline: C.Instant)
        case cancelTimeout
        /// For logs and metrics.
        case memberRemoved(memberId: String, reason: RemovalReason)
        case rebalanceCompleted(generation: Int32, members: Int, protocolName: String)
    }

    public enum RemovalReason: String, Hashable, Sendable {
        case left = "left"
        case sessionTimeout = "session timeout"
        case didNotRejoin = "did not rejoin in time"
    }

    public struct Member: Sendable {
        public var id: String
        public var clientId: String
        public var groupInstanceId: String?
        public var sessionTimeout: Duration
        public var rebalanceTimeout: Duration
        public var protocols: [JoinGroupRequest.GroupProtocol]
        /// The member is removed if nothing is heard from it by then (unless a request of it is parked).
        public var sessionDeadline: C.Instant
        public var parkedJoin: ParkedRequestID?
        public var parkedSync: ParkedRequestID?
        public var assignment: ByteBuffer

        func supports(_ name: String) -> Bool { protocols.contains { $0.name == name } }
        func metadata(for name: String) -> ByteBuffer { protocols.first { $0.name == name }?.metadata ?? ByteBuffer() }
    }

    /// What a JoinGroup carries that the state machine needs.
    public struct JoinInput: Sendable {
        public var memberId: String
        public var clientId: String
        public var groupInstanceId: String?
        public var sessionTimeoutMs: Int32
        /// −1 (v0): the session timeout.
        public var rebalanceTimeoutMs: Int32
        public var protocolType: String
        public var protocols: [JoinGroupRequest.GroupProtocol]

        public init(request: JoinGroupRequest, clientId: String) {
            memberId = request.memberId
            self.clientId = clientId
            groupInstanceId = request.groupInstanceId
            sessionTimeoutMs = request.sessionTimeoutMs
            rebalanceTimeoutMs = request.rebalanceTimeoutMs
            protocolType = request.protocolType
            protocols = request.protocols
        }
    }

    public let groupId: String
    public let policy: GroupPolicy
    let clock: C

    public private(set) var state: State = .empty
    public private(set) var generationId: Int32 = 0
    public private(set) var protocolType: String?
    public private(set) var protocolName: String?
    public private(set) var leaderId: String?
    /// Members in join order (the first to join leads a new group).
    public private(set) var memberOrder: [String] = []
    public private(set) var members: [String: Member] = [:]
    /// While PreparingRebalance: complete by then even if not everyone rejoined.
    var rebalanceDeadline: C.Instant?
    /// While PreparingRebalance out of Empty: do not complete before then, to let more members arrive.
    var initialDelayDeadline: C.Instant?
    /// The deadline the driver's timer is armed for.
    var armedDeadline: C.Instant?

    public init(groupId: String, policy: GroupPolicy, clock: C) {
        self.groupId = groupId
        self.policy = policy
        self.clock = clock
    }

    public var isEmpty: Bool { members.isEmpty }

    // MARK: JoinGroup

    /// A JoinGroup. `newMemberId` is used when the request's member id is empty (the driver generates it:
    /// ids are random, and randomness is an input). Returns the actions; the answer to `request` is among
    /// them (at once, or when the rebalance completes).
    public mutating func join(_ input: JoinInput, newMemberId: String, request: ParkedRequestID) -> [Action] {
        var actions: [Action] = []
        func reject(_ code: KafkaErrorCode) -> [Action] {
            [.completeJoin(request, JoinGroupResponse(errorCode: code, memberId: input.memberId))]
        }
        let now = clock.now
        let sessionTimeout = Duration.milliseconds(Int64(input.sessionTimeoutMs))
        guard sessionTimeout >= policy.minSessionTimeout && sessionTimeout <= policy.maxSessionTimeout else {
            return reject(.invalidSessionTimeout)
        }
        let rebalanceTimeout = input.rebalanceTimeoutMs >= 0 ? Duration.milliseconds(Int64(input.rebalanceTimeoutMs)) : sessionTimeout
        guard !input.protocolType.isEmpty, !input.protocols.isEmpty,
            isCompatible(protocolType: input.protocolType, protocols: input.protocols, excluding: input.memberId)
        else {
            return reject(.inconsistentGroupProtocol)
        }

        if input.memberId.isEmpty {
            guard members.count < policy.membersMax else { return reject(.groupMaxSizeReached) }
            let member = Member(
                id: newMemberId, clientId: input.clientId, groupInstanceId: input.groupInstanceId, sessionTimeout: sessionTimeout,
                rebalanceTimeout: rebalanceTimeout, protocols: input.protocols, sessionDeadline: now.advanced(by: sessionTimeout),
                parkedJoin: request, parkedSync: nil, assignment: ByteBuffer())
            members[newMemberId] = member
            memberOrder.append(newMemberId)
            protocolType = input.protocolType
            if state != .preparingRebalance { prepareRebalance(now: now, actions: &actions) }
            tryCompleteRebalance(now: now, actions: &actions)
            armTimer(&actions)
            return actions
        }

        guard var member = members[input.memberId] else { return reject(.unknownMemberId) }
        let sameProtocols = member.protocols == input.protocols
        member.sessionTimeout = sessionTimeout
        member.rebalanceTimeout = rebalanceTimeout
        member.protocols = input.protocols
        member.sessionDeadline = now.advanced(by: sessionTimeout)
        if let old = member.parkedJoin {
            // A retry while the first attempt is still parked: the newer one waits, the older is released.
            actions.append(.completeJoin(old, JoinGroupResponse(errorCode: .rebalanceInProgress, memberId: member.id)))
        }
        member.parkedJoin = request
        members[member.id] = member

        switch state {
        case .preparingRebalance:
            break
        case .completingRebalance, .stable:
            // A follower rejoining with unchanged metadata learns the current generation without forcing
            // a rebalance (Kafka does the same); the leader or changed metadata starts one.
            if sameProtocols && (state == .completingRebalance || member.id != leaderId) {
                members[member.id]?.parkedJoin = nil
                actions.append(.completeJoin(request, joinResponse(for: member.id)))
                armTimer(&actions)
                return actions
            }
            prepareRebalance(now: now, actions: &actions)
        case .empty:
            // Members exist only outside Empty; unreachable, but harmless: start a rebalance.
            prepareRebalance(now: now, actions: &actions)
        }
        tryCompleteRebalance(now: now, actions: &actions)
        armTimer(&actions)
        return actions
    }

    /// A member's protocols must share a name with every other member's, and the protocol type must match.
    func isCompatible(protocolType type: String, protocols: [JoinGroupRequest.GroupProtocol], excluding memberId: String) -> Bool {
        let others = members.values.filter { $0.id != memberId }
        if others.isEmpty { return true }
        if let protocolType, protocolType != type { return false }
        return protocols.contains { candidate in others.allSatisfy { $0.supports(candidate.name) } }
    }

    // MARK: SyncGroup

    public enum SyncOutcome: Sendable, Hashable {
        case answer(SyncGroupResponse)
        /// Parked (a follower waiting for the leader's assignment) or answered among the actions.
        case actions([Action])
    }

    public mutating func sync(memberId: String, generationId requestGeneration: Int32, assignments: [SyncGroupRequest.Assignment], request: ParkedRequestID) -> SyncOutcome {
        guard var member = members[memberId] else { return .answer(SyncGroupResponse(errorCode: .unknownMemberId)) }
        guard requestGeneration == generationId else { return .answer(SyncGroupResponse(errorCode: .illegalGeneration)) }
        let now = clock.now
        switch state {
        case .empty:
            return .answer(SyncGroupResponse(errorCode: .unknownMemberId))
        case .preparingRebalance:
            return .answer(SyncGroupResponse(errorCode: .rebalanceInProgress))
        case .stable:
            member.sessionDeadline = now.advanced(by: member.sessionTimeout)
            members[memberId] = member
            var actions: [Action] = []
            armTimer(&actions)
            return actions.isEmpty
                ? .answer(SyncGroupResponse(assignment: member.assignment))
                : .actions([.completeSync(request, SyncGroupResponse(assignment: member.assignment))] + actions)
        case .completingRebalance:
            var actions: [Action] = []
            if let old = member.parkedSync {
                actions.append(.completeSync(old, SyncGroupResponse(errorCode: .rebalanceInProgress)))
            }
            member.parkedSync = request
            member.sessionDeadline = now.advanced(by: member.sessionTimeout)
            members[memberId] = member
            if memberId == leaderId {
                // The leader's assignment: store each member's bytes, go Stable, release every parked sync.
                var byMember: [String: ByteBuffer] = [:]
                for assignment in assignments { byMember[assignment.memberId] = assignment.assignment }
                for id in memberOrder {
                    members[id]?.assignment = byMember[id] ?? ByteBuffer()
                }
                state = .stable
                for id in memberOrder {
                    guard var member = members[id], let parked = member.parkedSync else { continue }
                    member.parkedSync = nil
                    member.sessionDeadline = now.advanced(by: member.sessionTimeout)
                    members[id] = member
                    actions.append(.completeSync(parked, SyncGroupResponse(assignment: member.assignment)))
                }
            }
            armTimer(&actions)
            return .actions(actions)
        }
    }

    // MARK: Heartbeat, LeaveGroup, OffsetCommit checks

    public mutating func heartbeat(memberId: String, generationId requestGeneration: Int32) -> (KafkaErrorCode, [Action]) {
        guard state != .empty, var member = members[memberId] else { return (.unknownMemberId, []) }
        guard requestGeneration == generationId else { return (.illegalGeneration, []) }
        member.sessionDeadline = clock.now.advanced(by: member.sessionTimeout)
        members[memberId] = member
        var actions: [Action] = []
        armTimer(&actions)
        return (state == .preparingRebalance ? .rebalanceInProgress : .none, actions)
    }

    public mutating func leave(memberId: String) -> (KafkaErrorCode, [Action]) {
        guard members[memberId] != nil else { return (.unknownMemberId, []) }
        var actions: [Action] = []
        let now = clock.now
        remove(memberId, reason: .left, actions: &actions)
        if state == .stable || state == .completingRebalance { prepareRebalance(now: now, actions: &actions) }
        tryCompleteRebalance(now: now, actions: &actions)
        armTimer(&actions)
        return (.none, actions)
    }

    /// Whether an OffsetCommit from `memberId` at `generation` is accepted (Kafka's `doCommitOffsets`):
    /// a commit outside any generation on an Empty group is the simple/admin commit; otherwise the member
    /// and generation must match, and commits are refused only while CompletingRebalance — they are
    /// accepted while PreparingRebalance, so a consumer's commit-on-revoke succeeds (P9).
    public mutating func validateCommit(memberId: String, generationId requestGeneration: Int32) -> (KafkaErrorCode, [Action]) {
        if requestGeneration < 0 && memberId.isEmpty && state == .empty { return (.none, []) }
        if state == .completingRebalance { return (.rebalanceInProgress, []) }
        guard var member = members[memberId] else { return (.unknownMemberId, []) }
        guard requestGeneration == generationId else { return (.illegalGeneration, []) }
        member.sessionDeadline = clock.now.advanced(by: member.sessionTimeout)
        members[memberId] = member
        var actions: [Action] = []
        armTimer(&actions)
        return (.none, actions)
    }

    // MARK: Time

    /// The armed deadline passed (or the driver's timer fired early or late: the machine reads the clock).
    public mutating func timeoutFired() -> [Action] {
        var actions: [Action] = []
        let now = clock.now
        armedDeadline = nil
        var expired: [String] = []
        for id in memberOrder {
            guard let member = members[id], member.parkedJoin == nil, member.parkedSync == nil else { continue }
            if member.sessionDeadline <= now { expired.append(id) }
        }
        for id in expired { remove(id, reason: .sessionTimeout, actions: &actions) }
        if !expired.isEmpty && (state == .stable || state == .completingRebalance) { prepareRebalance(now: now, actions: &actions) }
        tryCompleteRebalance(now: now, actions: &actions)
        armTimer(&actions)
        return actions
    }

    /// The earliest moment something happens without a request: a session expiring, a rebalance timing
    /// out, the initial delay ending.
    var nextDeadline: C.Instant? {
        var deadline: C.Instant?
        func consider(_ instant: C.Instant?) {
            guard let instant else { return }
            if let current = deadline, current <= instant { return }
            deadline = instant
        }
        for member in members.values where member.parkedJoin == nil && member.parkedSync == nil {
            consider(member.sessionDeadline)
        }
        if state == .preparingRebalance {
            consider(rebalanceDeadline)
            // The initial delay only matters once everyone is in; before that, joins drive completion.
            if allMembersJoined { consider(initialDelayDeadline) }
        }
        return deadline
    }

    mutating func armTimer(_ actions: inout [Action]) {
        let next = nextDeadline
        guard next != armedDeadline else { return }
        armedDeadline = next
        if let next { actions.append(.scheduleTimeout(deadline: next)) } else { actions.append(.cancelTimeout) }
    }

    // MARK: Rebalance

    var allMembersJoined: Bool { members.values.allSatisfy { $0.parkedJoin != nil } }

    mutating func prepareRebalance(now: C.Instant, actions: inout [Action]) {
        if state == .completingRebalance {
            // Followers waiting for an assignment of a generation that will never be: let them rejoin.
            for id in memberOrder {
                guard let parked = members[id]?.parkedSync else { continue }
                members[id]?.parkedSync = nil
                actions.append(.completeSync(parked, SyncGroupResponse(errorCode: .rebalanceInProgress)))
            }
        }
        let wasEmpty = state == .empty
        state = .preparingRebalance
        let longest = members.values.map(\.rebalanceTimeout).max() ?? policy.initialRebalanceDelay
        rebalanceDeadline = now.advanced(by: longest)
        initialDelayDeadline = wasEmpty ? now.advanced(by: min(policy.initialRebalanceDelay, longest)) : nil
    }

    /// Completes the rebalance if everyone rejoined (and an initial delay is over), or if the rebalance
    /// timed out; members that did not rejoin are dropped.
    mutating func tryCompleteRebalance(now: C.Instant, actions: inout [Action]) {
        guard state == .preparingRebalance else { return }
        let timedOut = rebalanceDeadline.map { now >= $0 } ?? true
        let delayOver = initialDelayDeadline.map { now >= $0 } ?? true
        guard timedOut || (allMembersJoined && delayOver) else { return }
        for id in memberOrder where members[id]?.parkedJoin == nil {
            remove(id, reason: .didNotRejoin, actions: &actions)
        }
        rebalanceDeadline = nil
        initialDelayDeadline = nil
        generationId &+= 1
        guard !members.isEmpty else {
            state = .empty
            protocolType = nil
            protocolName = nil
            leaderId = nil
            return
        }
        if leaderId.map({ members[$0] == nil }) ?? true { leaderId = memberOrder.first }
        protocolName = selectProtocol()
        state = .completingRebalance
        for id in memberOrder {
            guard var member = members[id], let parked = member.parkedJoin else { continue }
            member.parkedJoin = nil
            member.assignment = ByteBuffer()
            member.sessionDeadline = now.advanced(by: member.sessionTimeout)
            members[id] = member
            actions.append(.completeJoin(parked, joinResponse(for: id)))
        }
        actions.append(.rebalanceCompleted(generation: generationId, members: members.count, protocolName: protocolName ?? ""))
    }

    /// The first of the leader's protocols that every member supports (never empty: join checked that
    /// one exists).
    func selectProtocol() -> String? {
        guard let leader = leaderId.flatMap({ members[$0] }) else { return nil }
        return leader.protocols.first { candidate in members.values.allSatisfy { $0.supports(candidate.name) } }?.name
            ?? leader.protocols.first?.name
    }

    /// The JoinGroup answer for `memberId` in the current generation; only the leader gets the members.
    func joinResponse(for memberId: String) -> JoinGroupResponse {
        let name = protocolName ?? ""
        var response = JoinGroupResponse(
            generationId: generationId, protocolName: name, leader: leaderId ?? "", memberId: memberId)
        if memberId == leaderId {
            response.members = memberOrder.compactMap { id in
                guard let member = members[id] else { return nil }
                return JoinGroupResponse.Member(memberId: id, groupInstanceId: member.groupInstanceId, metadata: member.metadata(for: name))
            }
        }
        return response
    }

    mutating func remove(_ id: String, reason: RemovalReason, actions: inout [Action]) {
        guard let member = members.removeValue(forKey: id) else { return }
        memberOrder.removeAll { $0 == id }
        if let parked = member.parkedJoin { actions.append(.completeJoin(parked, JoinGroupResponse(errorCode: .unknownMemberId, memberId: id))) }
        if let parked = member.parkedSync { actions.append(.completeSync(parked, SyncGroupResponse(errorCode: .unknownMemberId))) }
        actions.append(.memberRemoved(memberId: id, reason: reason))
    }
}
