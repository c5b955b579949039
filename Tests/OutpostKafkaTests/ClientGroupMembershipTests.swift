import NIOCore
import OutpostCore
import Synchronization
import Testing
@testable import OutpostKafka

/// A clock that moves only when a test says so; the membership state machine reads time from it.
struct ClientManualClock: Clock, Sendable {
    struct Instant: InstantProtocol, Hashable, Sendable {
        var sinceStart: Duration
        func advanced(by duration: Duration) -> Instant { Instant(sinceStart: sinceStart + duration) }
        func duration(to other: Instant) -> Duration { other.sinceStart - sinceStart }
        static func < (lhs: Instant, rhs: Instant) -> Bool { lhs.sinceStart < rhs.sinceStart }
    }

    final class Storage: Sendable {
        let now = Mutex(Instant(sinceStart: .zero))
    }

    let storage = Storage()
    var now: Instant { storage.now.withLock { $0 } }
    var minimumResolution: Duration { .nanoseconds(1) }
    func advance(by duration: Duration) { storage.now.withLock { $0 = $0.advanced(by: duration) } }

    func sleep(until deadline: Instant, tolerance: Duration?) async throws {
        preconditionFailure("the state machine returns deadlines; it never sleeps")
    }
}

/// Consumer-group membership (kafka-subset.md §5, client side) driven by hand: every request's answer
/// and every timer is an explicit step, time only moves when the test moves it.
@Suite struct ClientGroupMembershipTests {
    typealias Machine = GroupMembership<ClientManualClock>
    typealias Action = Machine.Action

    let clock = ClientManualClock()
    let configuration = GroupMembershipConfiguration(
        groupId: "monitors", topics: ["telemetry"], sessionTimeout: .seconds(10), rebalanceTimeout: .seconds(30), heartbeatInterval: .seconds(3),
        retryBackoff: KafkaBackoffPolicy(initial: .milliseconds(100), maximum: .seconds(2), jitterFraction: 0))

    func machine() -> Machine { Machine(configuration: configuration, clock: clock, jitter: KafkaJitterGenerator(seed: 1)) }

    func partitions(_ indexes: Int32...) -> [KafkaTopicPartition] { indexes.map { KafkaTopicPartition(topic: "telemetry", partition: $0) } }

    func joined(_ memberId: String, leader: String, generation: Int32 = 1, members: [JoinGroupResponse.Member] = []) -> JoinGroupResponse {
        JoinGroupResponse(generationId: generation, protocolName: "range", leader: leader, memberId: memberId, members: members)
    }

    func synced(_ partitions: [KafkaTopicPartition]) -> SyncGroupResponse {
        SyncGroupResponse(assignment: ConsumerProtocolAssignment(partitions: partitions).encoded())
    }

    func join(in actions: [Action]) -> JoinGroupRequest? {
        for case .sendJoin(let request) in actions { return request }
        return nil
    }

    func sync(in actions: [Action]) -> SyncGroupRequest? {
        for case .sendSync(let request) in actions { return request }
        return nil
    }

    func deadline(in actions: [Action]) -> ClientManualClock.Instant? {
        for case .scheduleTimer(let deadline) in actions { return deadline }
        return nil
    }

    /// Start → coordinator → join as follower "m-1" → sync with `assigned`: stable.
    func stableFollower(_ assigned: [KafkaTopicPartition]) -> Machine {
        var membership = machine()
        #expect(membership.start() == [.findCoordinator])
        let joinRequest = join(in: membership.coordinatorFound())
        #expect(joinRequest?.memberId == "")
        _ = membership.joinCompleted(joined("m-1", leader: "m-0"))
        _ = membership.syncCompleted(synced(assigned))
        #expect(membership.phase == .stable)
        return membership
    }

    @Test func aFollowerJoinsSyncsWithAnEmptyAssignmentListAndGetsItsPartitions() throws {
        var membership = machine()
        #expect(membership.start() == [.findCoordinator])
        #expect(membership.phase == .joining)
        let request = join(in: membership.coordinatorFound())
        #expect(request?.groupId == "monitors")
        #expect(request?.sessionTimeoutMs == 10_000 && request?.rebalanceTimeoutMs == 30_000)
        #expect(request?.protocolType == "consumer")
        #expect(request?.protocols.map(\.name) == ["range"])
        #expect(try request.map { try ConsumerProtocolSubscription.decode($0.protocols[0].metadata).topics } == ["telemetry"])

        let afterJoin = membership.joinCompleted(joined("m-1", leader: "m-0", generation: 4))
        #expect(sync(in: afterJoin) == SyncGroupRequest(groupId: "monitors", generationId: 4, memberId: "m-1", assignments: []))
        #expect(membership.commitIdentity == nil, "no partitions owned yet")

        let afterSync = membership.syncCompleted(synced(partitions(1, 2)))
        #expect(afterSync == [.assigned(generation: 4, partitions: partitions(1, 2)), .scheduleTimer(deadline: clock.now.advanced(by: .seconds(3)))])
        #expect(membership.phase == .stable)
        #expect(membership.commitIdentity?.generationId == 4 && membership.commitIdentity?.memberId == "m-1")
    }

    @Test func theLeaderComputesTheAssignmentBeforeSyncing() {
        var membership = machine()
        _ = membership.start()
        _ = membership.coordinatorFound()
        let members = [
            JoinGroupResponse.Member(memberId: "m-0", metadata: ConsumerProtocolSubscription(topics: ["telemetry"]).encoded()),
            JoinGroupResponse.Member(memberId: "m-1", metadata: ConsumerProtocolSubscription(topics: ["telemetry"]).encoded()),
        ]
        #expect(membership.joinCompleted(joined("m-0", leader: "m-0", members: members)) == [.computeAssignment(protocolName: "range", members: members)])
        #expect(membership.isLeader && membership.phase == .assigning)
        let assignments = [
            SyncGroupRequest.Assignment(memberId: "m-0", assignment: ConsumerProtocolAssignment(partitions: partitions(0)).encoded()),
            SyncGroupRequest.Assignment(memberId: "m-1", assignment: ConsumerProtocolAssignment(partitions: partitions(1)).encoded()),
        ]
        #expect(sync(in: membership.assignmentComputed(assignments))?.assignments == assignments)
        #expect(membership.syncCompleted(synced(partitions(0))).first == .assigned(generation: 1, partitions: partitions(0)))
    }

    @Test func heartbeatsGoOutOnTheTimerAndOnlyOneAtATime() {
        var membership = stableFollower(partitions(0))
        #expect(membership.timerFired() == [.scheduleTimer(deadline: clock.now.advanced(by: .seconds(3)))], "early: re-armed, nothing sent")
        clock.advance(by: .seconds(3))
        let tick = membership.timerFired()
        #expect(tick == [
            .sendHeartbeat(HeartbeatRequest(groupId: "monitors", generationId: 1, memberId: "m-1")),
            .scheduleTimer(deadline: clock.now.advanced(by: .seconds(3))),
        ])
        clock.advance(by: .seconds(3))
        #expect(membership.timerFired() == [.scheduleTimer(deadline: clock.now.advanced(by: .seconds(3)))], "the last heartbeat is unanswered")
        #expect(membership.heartbeatCompleted(.none) == [])
        clock.advance(by: .seconds(3))
        #expect(membership.timerFired().count == 2)
    }

    @Test func aRebalanceRevokesEverythingThenRejoinsWithTheSameMemberId() {
        var membership = stableFollower(partitions(0, 1))
        clock.advance(by: .seconds(3))
        _ = membership.timerFired()
        #expect(membership.heartbeatCompleted(.rebalanceInProgress) == [.cancelTimer, .revoke(partitions(0, 1))])
        #expect(membership.phase == .revoking)
        #expect(membership.commitIdentity?.generationId == 1, "commits on revoke still carry the old generation")
        let rejoin = membership.revokeCompleted()
        #expect(join(in: rejoin)?.memberId == "m-1")
        #expect(membership.assignment.isEmpty && membership.phase == .joining)
        _ = membership.joinCompleted(joined("m-1", leader: "m-0", generation: 2))
        #expect(membership.syncCompleted(synced(partitions(1))).first == .assigned(generation: 2, partitions: partitions(1)))
    }

    @Test func anUnknownMemberStartsOverWithoutAMemberId() {
        var membership = stableFollower(partitions(0))
        clock.advance(by: .seconds(3))
        _ = membership.timerFired()
        #expect(membership.heartbeatCompleted(.unknownMemberId) == [.cancelTimer, .revoke(partitions(0))])
        #expect(membership.commitIdentity == nil, "the coordinator forgot this member: no commit can succeed")
        #expect(join(in: membership.revokeCompleted())?.memberId == "")
    }

    @Test func memberIdRequiredJoinsAgainAtOnceWithTheGivenId() {
        var membership = machine()
        _ = membership.start()
        _ = membership.coordinatorFound()
        let again = membership.joinCompleted(JoinGroupResponse(errorCode: .memberIdRequired, memberId: "m-7"))
        #expect(join(in: again)?.memberId == "m-7")
    }

    @Test func aMovedCoordinatorIsLookedUpAgainAfterABackoff() {
        var membership = machine()
        _ = membership.start()
        _ = membership.coordinatorFound()
        let waiting = membership.joinCompleted(JoinGroupResponse(errorCode: .notCoordinator))
        #expect(waiting == [.scheduleTimer(deadline: clock.now.advanced(by: .milliseconds(100)))])
        #expect(membership.timerFired() == [.scheduleTimer(deadline: clock.now.advanced(by: .milliseconds(100)))])
        clock.advance(by: .milliseconds(100))
        #expect(membership.timerFired() == [.findCoordinator])
        // The next failure waits twice as long.
        #expect(membership.requestFailed(.connectionClosed(broker: KafkaBrokerAddress(host: "b", port: 1)))
            == [.scheduleTimer(deadline: clock.now.advanced(by: .milliseconds(200)))])
    }

    @Test func aSessionWithoutHeartbeatAnswersIsGivenUp() {
        var membership = stableFollower(partitions(3))
        for _ in 0..<3 {
            clock.advance(by: .seconds(3))
            _ = membership.timerFired()
        }
        clock.advance(by: .seconds(3))
        #expect(membership.timerFired() == [.cancelTimer, .revoke(partitions(3))], "12 s without an answer > 10 s session")
        #expect(membership.memberId == "")
        #expect(join(in: membership.revokeCompleted())?.memberId == "")
    }

    @Test func closingAStableMemberRevokesThenLeaves() {
        var membership = stableFollower(partitions(0))
        #expect(membership.close() == [.cancelTimer, .revoke(partitions(0))])
        #expect(membership.revokeCompleted() == [.cancelTimer, .sendLeave(LeaveGroupRequest(groupId: "monitors", memberId: "m-1"))])
        #expect(membership.phase == .leaving)
        #expect(membership.leaveCompleted() == [.closed])
        #expect(membership.phase == .closed)
        #expect(membership.heartbeatCompleted(.none) == [], "late answers are ignored")
    }

    @Test func closingBeforeAnyMemberIdEndsAtOnceAndAFailedLeaveStillCloses() {
        var fresh = machine()
        _ = fresh.start()
        #expect(fresh.close() == [.cancelTimer, .closed])
        #expect(fresh.coordinatorFound() == [])

        var joining = machine()
        _ = joining.start()
        _ = joining.coordinatorFound()
        _ = joining.joinCompleted(JoinGroupResponse(errorCode: .memberIdRequired, memberId: "m-2"))
        #expect(joining.close() == [.cancelTimer, .sendLeave(LeaveGroupRequest(groupId: "monitors", memberId: "m-2"))])
        #expect(joining.joinCompleted(joined("m-2", leader: "m-2")) == [], "the parked join's answer no longer matters")
        #expect(joining.requestFailed(.requestTimedOut(api: .leaveGroup, broker: KafkaBrokerAddress(host: "b", port: 1))) == [.closed])
    }

    @Test func refusalsTheMemberCannotFixAreFatal() {
        var membership = machine()
        _ = membership.start()
        _ = membership.coordinatorFound()
        #expect(membership.joinCompleted(JoinGroupResponse(errorCode: .inconsistentGroupProtocol))
            == [.cancelTimer, .failed(.groupFailed(group: "monitors", .inconsistentGroupProtocol))])
        #expect(membership.phase == .failed)
    }

    @Test func aSyncRefusedForARebalanceRejoinsAndAnUnreadableAssignmentFails() {
        var membership = machine()
        _ = membership.start()
        _ = membership.coordinatorFound()
        _ = membership.joinCompleted(joined("m-1", leader: "m-0"))
        #expect(join(in: membership.syncCompleted(SyncGroupResponse(errorCode: .rebalanceInProgress)))?.memberId == "m-1")
        _ = membership.joinCompleted(joined("m-1", leader: "m-0", generation: 2))
        var garbage = ByteBuffer()
        garbage.writeBytes([0, 0, 0, 0, 0, 9])
        #expect(membership.syncCompleted(SyncGroupResponse(assignment: garbage)) == [.cancelTimer, .failed(.groupFailed(group: "monitors", .inconsistentGroupProtocol))])
    }

    @Test func assignedPartitionsOfOtherTopicsAreIgnored() {
        let membership = stableFollower([KafkaTopicPartition(topic: "other", partition: 0)] + partitions(2))
        #expect(membership.assignment == partitions(2))
    }
}
