import NIOCore
import OutpostKafka
import Testing
@testable import OutpostBroker

/// The consumer-group state machine (kafka-subset.md §5) driven by hand: requests in, actions out, time
/// from a manual clock. Each test is named after the rule it checks.
@Suite struct GroupStateMachineTests {
    typealias Machine = GroupStateMachine<ManualClock>
    let clock = ManualClock()
    let policy = GroupPolicy(
        initialRebalanceDelay: .milliseconds(500), minSessionTimeout: .seconds(1), maxSessionTimeout: .seconds(300), membersMax: 3)

    func machine() -> Machine { Machine(groupId: "g", policy: policy, clock: clock) }

    static func metadata(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    func join(
        _ memberId: String = "", session: Int32 = 10_000, rebalance: Int32 = 30_000, protocols: [String] = ["range", "roundrobin"],
        type: String = "consumer"
    ) -> Machine.JoinInput {
        Machine.JoinInput(
            request: JoinGroupRequest(
                groupId: "g", sessionTimeoutMs: session, rebalanceTimeoutMs: rebalance, memberId: memberId, protocolType: type,
                protocols: protocols.map { .init(name: $0, metadata: Self.metadata("sub:\($0)")) }),
            clientId: "client")
    }

    var nextRequest: UInt64 = 0
    mutating func request() -> ParkedRequestID {
        nextRequest += 1
        return ParkedRequestID(nextRequest)
    }

    /// The JoinGroup answers among `actions`, by request.
    func joins(_ actions: [Machine.Action]) -> [ParkedRequestID: JoinGroupResponse] {
        var out: [ParkedRequestID: JoinGroupResponse] = [:]
        for case .completeJoin(let id, let response) in actions { out[id] = response }
        return out
    }

    func syncs(_ actions: [Machine.Action]) -> [ParkedRequestID: SyncGroupResponse] {
        var out: [ParkedRequestID: SyncGroupResponse] = [:]
        for case .completeSync(let id, let response) in actions { out[id] = response }
        return out
    }

    func deadline(_ actions: [Machine.Action]) -> ManualClock.Instant? {
        actions.reduce(nil) { last, action in
            if case .scheduleTimeout(let deadline) = action { return deadline }
            return last
        }
    }

    /// Brings a group to Stable with the given members (in join order); returns the machine and generation.
    mutating func stableGroup(_ ids: [String]) -> Machine {
        var group = machine()
        var pending: [ParkedRequestID] = []
        for id in ids {
            let token = request()
            pending.append(token)
            _ = group.join(join(), newMemberId: id, request: token)
        }
        clock.advance(by: .milliseconds(500))
        let answers = joins(group.timeoutFired())
        #expect(answers.count == ids.count)
        #expect(group.state == .completingRebalance)
        let leader = group.leaderId ?? ""
        let outcome = group.sync(
            memberId: leader, generationId: group.generationId,
            assignments: ids.map { .init(memberId: $0, assignment: Self.metadata("assigned:\($0)")) }, request: request())
        guard case .actions(let actions) = outcome else {
            Issue.record("leader sync did not produce actions")
            return group
        }
        #expect(syncs(actions).count == 1)
        #expect(group.state == .stable)
        return group
    }

    // MARK: JoinGroup

    @Test mutating func aNewGroupWaitsTheInitialDelayThenCompletesGenerationOne() {
        var group = machine()
        let first = request()
        let actions = group.join(join(), newMemberId: "m1", request: first)
        #expect(joins(actions).isEmpty, "parked until the initial delay passes")
        #expect(group.state == .preparingRebalance)
        #expect(deadline(actions) == clock.now.advanced(by: .milliseconds(500)))

        clock.advance(by: .milliseconds(200))
        let second = request()
        #expect(joins(group.join(join(), newMemberId: "m2", request: second)).isEmpty, "a second member joins the same generation")

        clock.advance(by: .milliseconds(300))
        let answers = joins(group.timeoutFired())
        #expect(group.state == .completingRebalance)
        #expect(group.generationId == 1)
        let leader = answers[first]
        #expect(leader?.errorCode == KafkaErrorCode.none)
        #expect(leader?.memberId == "m1")
        #expect(leader?.leader == "m1")
        #expect(leader?.protocolName == "range")
        #expect(leader?.members.map(\.memberId) == ["m1", "m2"], "only the leader gets the members")
        #expect(leader?.members.first?.metadata == Self.metadata("sub:range"))
        #expect(answers[second]?.members.isEmpty == true)
        #expect(answers[second]?.leader == "m1")
        #expect(answers[second]?.memberId == "m2")
    }

    @Test mutating func aJoinInAStableGroupStartsARebalanceThatWaitsForEveryKnownMember() {
        var group = stableGroup(["m1"])
        let generation = group.generationId
        let newcomer = request()
        #expect(joins(group.join(join(), newMemberId: "m2", request: newcomer)).isEmpty)
        #expect(group.state == .preparingRebalance)
        #expect(group.heartbeat(memberId: "m1", generationId: generation).0 == .rebalanceInProgress, "heartbeats tell m1 to rejoin")
        let rejoin = request()
        let answers = joins(group.join(join("m1"), newMemberId: "unused", request: rejoin))
        #expect(answers.count == 2, "everyone rejoined: the rebalance completes without waiting for the timeout")
        #expect(group.generationId == generation + 1, "the generation goes up by one, only on completion")
        #expect(answers[rejoin]?.leader == "m1", "the old leader stays leader")
        #expect(answers[rejoin]?.members.count == 2)
        #expect(answers[newcomer]?.members.isEmpty == true)
    }

    @Test mutating func aFollowerRejoiningAStableGroupWithUnchangedMetadataDoesNotRebalance() {
        var group = stableGroup(["m1", "m2"])
        let token = request()
        let answers = joins(group.join(join("m2"), newMemberId: "x", request: token))
        #expect(answers[token]?.generationId == group.generationId)
        #expect(group.state == .stable)
    }

    @Test mutating func joinRejectsAnUnknownMemberIdAnInvalidSessionTimeoutAndIncompatibleProtocols() {
        var group = stableGroup(["m1"])
        var token = request()
        #expect(joins(group.join(join("ghost"), newMemberId: "x", request: token))[token]?.errorCode == .unknownMemberId)
        token = request()
        #expect(joins(group.join(join(session: 500), newMemberId: "x", request: token))[token]?.errorCode == .invalidSessionTimeout)
        token = request()
        #expect(joins(group.join(join(protocols: ["sticky"]), newMemberId: "x", request: token))[token]?.errorCode == .inconsistentGroupProtocol)
        token = request()
        #expect(joins(group.join(join(type: "connect"), newMemberId: "x", request: token))[token]?.errorCode == .inconsistentGroupProtocol)
        #expect(group.state == .stable, "rejected joins change nothing")
    }

    @Test mutating func theProtocolIsTheLeadersFirstChoiceThatEveryMemberSupports() {
        var group = machine()
        let leader = request()
        _ = group.join(join(protocols: ["range", "roundrobin"]), newMemberId: "m1", request: leader)
        _ = group.join(join(protocols: ["roundrobin"]), newMemberId: "m2", request: request())
        clock.advance(by: .seconds(1))
        let answers = joins(group.timeoutFired())
        #expect(answers[leader]?.protocolName == "roundrobin")
        #expect(answers[leader]?.members.map(\.metadata) == [Self.metadata("sub:roundrobin"), Self.metadata("sub:roundrobin")])
    }

    @Test mutating func aGroupAtItsSizeLimitRefusesNewMembers() {
        var group = stableGroup(["m1", "m2", "m3"])
        let token = request()
        #expect(joins(group.join(join(), newMemberId: "m4", request: token))[token]?.errorCode == .groupMaxSizeReached)
    }

    @Test mutating func membersThatDoNotRejoinBeforeTheRebalanceTimeoutAreDropped() {
        var group = stableGroup(["m1", "m2"])
        let token = request()
        // m1 rejoins (rebalance timeout 30 s), m2 keeps heartbeating but never rejoins.
        let actions = group.join(join("m1"), newMemberId: "x", request: token)
        #expect(joins(actions).isEmpty)
        for _ in 0..<5 {
            clock.advance(by: .seconds(5))
            #expect(group.heartbeat(memberId: "m2", generationId: group.generationId).0 == .rebalanceInProgress)
            _ = group.timeoutFired()
        }
        clock.advance(by: .seconds(5))
        let done = group.timeoutFired()
        #expect(joins(done)[token]?.members.map(\.memberId) == ["m1"])
        #expect(done.contains(.memberRemoved(memberId: "m2", reason: .didNotRejoin)))
        #expect(group.members.keys.sorted() == ["m1"])
    }

    // MARK: SyncGroup

    @Test mutating func followersWaitForTheLeadersSyncAndGetExactlyTheirAssignment() {
        var group = machine()
        _ = group.join(join(), newMemberId: "m1", request: request())
        _ = group.join(join(), newMemberId: "m2", request: request())
        clock.advance(by: .seconds(1))
        _ = group.timeoutFired()
        let follower = request()
        let parked = group.sync(memberId: "m2", generationId: 1, assignments: [], request: follower)
        #expect(parked == .actions([]), "the follower is parked")
        let leader = request()
        guard case .actions(let actions) = group.sync(
            memberId: "m1", generationId: 1,
            assignments: [.init(memberId: "m1", assignment: Self.metadata("p0")), .init(memberId: "m2", assignment: Self.metadata("p1"))],
            request: leader)
        else {
            Issue.record("leader sync answered directly")
            return
        }
        let answers = syncs(actions)
        #expect(answers[leader]?.assignment == Self.metadata("p0"))
        #expect(answers[follower]?.assignment == Self.metadata("p1"))
        #expect(group.state == .stable)
        // A later sync in Stable gets the stored assignment at once.
        #expect(group.sync(memberId: "m2", generationId: 1, assignments: [], request: request()) == .answer(SyncGroupResponse(assignment: Self.metadata("p1"))))
    }

    @Test mutating func syncRejectsUnknownMembersOldGenerationsAndSyncsDuringPreparingRebalance() {
        var group = stableGroup(["m1", "m2"])
        #expect(group.sync(memberId: "ghost", generationId: 1, assignments: [], request: request()) == .answer(SyncGroupResponse(errorCode: .unknownMemberId)))
        #expect(group.sync(memberId: "m1", generationId: 0, assignments: [], request: request()) == .answer(SyncGroupResponse(errorCode: .illegalGeneration)))
        _ = group.join(join(), newMemberId: "m3", request: request())
        #expect(group.sync(memberId: "m1", generationId: 1, assignments: [], request: request()) == .answer(SyncGroupResponse(errorCode: .rebalanceInProgress)))
    }

    @Test mutating func parkedFollowerSyncsAreReleasedWithRebalanceInProgressWhenANewRebalanceStarts() {
        var group = machine()
        _ = group.join(join(), newMemberId: "m1", request: request())
        _ = group.join(join(), newMemberId: "m2", request: request())
        clock.advance(by: .seconds(1))
        _ = group.timeoutFired()
        let follower = request()
        _ = group.sync(memberId: "m2", generationId: 1, assignments: [], request: follower)
        let actions = group.join(join(), newMemberId: "m3", request: request())
        #expect(syncs(actions)[follower]?.errorCode == .rebalanceInProgress)
        #expect(group.state == .preparingRebalance)
    }

    // MARK: Heartbeat, leave, session timeout

    @Test mutating func heartbeatAnswersPerState() {
        var group = stableGroup(["m1", "m2"])
        #expect(group.heartbeat(memberId: "ghost", generationId: 1).0 == .unknownMemberId)
        #expect(group.heartbeat(memberId: "m1", generationId: 7).0 == .illegalGeneration)
        #expect(group.heartbeat(memberId: "m1", generationId: 1).0 == KafkaErrorCode.none)
        _ = group.join(join(), newMemberId: "m3", request: request())
        #expect(group.heartbeat(memberId: "m2", generationId: 1).0 == .rebalanceInProgress)
    }

    @Test mutating func aMemberWhoseSessionExpiresIsRemovedAndTheOthersRebalance() {
        var group = stableGroup(["m1", "m2"])
        for _ in 0..<3 {
            clock.advance(by: .seconds(4))
            #expect(group.heartbeat(memberId: "m1", generationId: 1).0 == KafkaErrorCode.none)
        }
        // m2 has been silent for 12 s > its 10 s session.
        let actions = group.timeoutFired()
        #expect(actions.contains(.memberRemoved(memberId: "m2", reason: .sessionTimeout)))
        #expect(group.state == .preparingRebalance)
        #expect(group.heartbeat(memberId: "m1", generationId: 1).0 == .rebalanceInProgress)
        let token = request()
        let answers = joins(group.join(join("m1"), newMemberId: "x", request: token))
        #expect(answers[token]?.generationId == 2)
        #expect(answers[token]?.members.map(\.memberId) == ["m1"], "m1 takes over every partition")
    }

    @Test mutating func heartbeatsKeepAMemberAlivePastItsSessionTimeout() {
        var group = stableGroup(["m1"])
        for _ in 0..<10 {
            clock.advance(by: .seconds(3))
            #expect(group.heartbeat(memberId: "m1", generationId: 1).0 == KafkaErrorCode.none)
            #expect(group.timeoutFired().isEmpty || group.state == .stable)
        }
        #expect(group.members.keys.contains("m1"))
    }

    @Test mutating func leavingRebalancesTheRestAndTheLastLeaveEmptiesTheGroup() {
        var group = stableGroup(["m1", "m2"])
        #expect(group.leave(memberId: "ghost").0 == .unknownMemberId)
        let (code, actions) = group.leave(memberId: "m1")
        #expect(code == KafkaErrorCode.none)
        #expect(actions.contains(.memberRemoved(memberId: "m1", reason: .left)))
        #expect(group.state == .preparingRebalance)
        let token = request()
        let answers = joins(group.join(join("m2"), newMemberId: "x", request: token))
        #expect(answers[token]?.leader == "m2", "a new leader when the old one left")
        #expect(group.leave(memberId: "m2").0 == KafkaErrorCode.none)
        #expect(group.state == .empty)
        #expect(group.isEmpty)
    }

    @Test mutating func theTimerIsArmedForTheEarliestDeadlineAndCancelledWhenNothingIsPending() {
        var group = stableGroup(["m1"])
        let (_, actions) = group.leave(memberId: "m1")
        #expect(actions.contains(.cancelTimeout))
    }

    // MARK: OffsetCommit

    @Test mutating func commitRulesFollowKafka() {
        var empty = machine()
        #expect(empty.validateCommit(memberId: "", generationId: -1).0 == KafkaErrorCode.none, "simple commit on an empty group")

        var group = stableGroup(["m1", "m2"])
        #expect(group.validateCommit(memberId: "m1", generationId: 1).0 == KafkaErrorCode.none)
        #expect(group.validateCommit(memberId: "ghost", generationId: 1).0 == .unknownMemberId)
        #expect(group.validateCommit(memberId: "m1", generationId: 2).0 == .illegalGeneration)
        #expect(group.validateCommit(memberId: "", generationId: -1).0 == .unknownMemberId, "no simple commit into a live group")
        _ = group.join(join(), newMemberId: "m3", request: request())
        #expect(group.state == .preparingRebalance)
        #expect(group.validateCommit(memberId: "m1", generationId: 1).0 == KafkaErrorCode.none, "commit-on-revoke is accepted (P9)")
        _ = group.join(join("m1"), newMemberId: "x", request: request())
        _ = group.join(join("m2"), newMemberId: "x", request: request())
        #expect(group.state == .completingRebalance)
        #expect(group.validateCommit(memberId: "m1", generationId: 2).0 == .rebalanceInProgress)
    }
}
