import OutpostCore
import Testing
@testable import OutpostKafka

/// The idempotent producer's per-partition rules, without sockets: window, in-order results, holding and
/// resending after a retriable failure, and what is fatal.
@Suite struct ClientProducePipelineTests {
    typealias ID = ProducePipeline.EntryID
    let partition = KafkaTopicPartition(topic: "t", partition: 0)

    func identity(_ sequence: Int32) -> ProducerIdentity { ProducerIdentity(producerId: 7, producerEpoch: 0, baseSequence: sequence) }

    /// A pipeline holding entries 1…count, all written once.
    func pipeline(_ count: Int, window: Int = 5, idempotent: Bool = true) -> ProducePipeline {
        var pipeline = ProducePipeline(partition: partition, windowMax: window, idempotent: idempotent)
        for index in 1...count { pipeline.enqueue(ID(UInt64(index)), producer: identity(Int32(index - 1) * 2)) }
        #expect(pipeline.takeSendable() == (1...count).map { ID(UInt64($0)) })
        return pipeline
    }

    func ok(_ offset: Int64) -> ProducePipeline.Answer { .response(.none, baseOffset: offset) }

    @Test func theWindowIsBoundedAndBatchesAreWrittenInOrderOnce() {
        var pipeline = ProducePipeline(partition: partition, windowMax: 2, idempotent: true)
        pipeline.enqueue(ID(1), producer: identity(0))
        #expect(pipeline.hasRoom)
        pipeline.enqueue(ID(2), producer: identity(1))
        #expect(!pipeline.hasRoom)
        #expect(pipeline.takeSendable() == [ID(1), ID(2)])
        #expect(pipeline.takeSendable() == [], "nothing is written twice")
        #expect(pipeline.inFlightCount == 2)
        let first = pipeline.answered(ID(1), ok(10))
        #expect(first.completed == [.init(id: ID(1), outcome: .acknowledged(baseOffset: Offset(10)))])
        #expect(pipeline.hasRoom)
    }

    @Test func aRetriableFailureHoldsThePartitionUntilEveryAnswerIsBackThenResendsAllInOrder() {
        var pipeline = pipeline(3)
        let first = pipeline.answered(ID(1), .response(.notLeaderOrFollower, baseOffset: -1))
        #expect(first.completed.isEmpty)
        #expect(first.refreshLeader)
        #expect(pipeline.isHolding)
        #expect(!pipeline.isReadyToResume, "two answers are still out")
        // Behind the failed batch the broker saw a sequence gap: expected, and retried too.
        #expect(pipeline.answered(ID(2), .response(.outOfOrderSequenceNumber, baseOffset: -1)).completed.isEmpty)
        #expect(pipeline.answered(ID(3), .response(.outOfOrderSequenceNumber, baseOffset: -1)).completed.isEmpty)
        #expect(pipeline.isReadyToResume)
        #expect(pipeline.takeSendable() == [], "held")
        pipeline.resume()
        #expect(pipeline.takeSendable() == [ID(1), ID(2), ID(3)])
        #expect(pipeline.attempts(of: ID(1)) == 2)
        #expect(pipeline.producer(of: ID(2)) == identity(2), "resent with the same sequence")
        #expect(pipeline.answered(ID(1), ok(0)).completed.map(\.id) == [ID(1)])
        #expect(pipeline.answered(ID(2), .response(.duplicateSequenceNumber, baseOffset: -1)).completed
            == [.init(id: ID(2), outcome: .acknowledged(baseOffset: nil))])
        #expect(pipeline.answered(ID(3), ok(4)).completed.map(\.id) == [ID(3)])
        #expect(pipeline.isEmpty)
    }

    @Test func aSuccessBehindAFailureIsReleasedOnlyAfterTheFailedBatchSettles() {
        var pipeline = pipeline(2)
        _ = pipeline.answered(ID(1), .transport(.connectionClosed(broker: KafkaBrokerAddress(host: "b", port: 1))))
        // The broker appended batch 2 (it had no state for this producer); its result waits for batch 1.
        #expect(pipeline.answered(ID(2), ok(5)).completed.isEmpty)
        #expect(pipeline.isReadyToResume)
        pipeline.resume()
        #expect(pipeline.takeSendable() == [ID(1)], "only the unacknowledged batch is resent")
        let settled = pipeline.answered(ID(1), ok(4)).completed
        #expect(settled == [.init(id: ID(1), outcome: .acknowledged(baseOffset: Offset(4))), .init(id: ID(2), outcome: .acknowledged(baseOffset: Offset(5)))])
    }

    @Test func outOfOrderSequenceForTheOldestBatchIsFatalAndAbortsTheRestOfTheWindow() {
        var pipeline = pipeline(3)
        let reaction = pipeline.answered(ID(1), .response(.outOfOrderSequenceNumber, baseOffset: -1))
        #expect(reaction.identityFailed)
        #expect(reaction.completed == [.init(id: ID(1), outcome: .failed(.outOfOrderSequence(partition, producer: identity(0))))])
        // Batches 2 and 3 were on the wire: each gets its answer, and any refusal becomes an abort.
        #expect(pipeline.answered(ID(2), .response(.outOfOrderSequenceNumber, baseOffset: -1)).completed
            == [.init(id: ID(2), outcome: .failed(.abortedAfterEarlierFailure(partition)))])
        #expect(pipeline.answered(ID(3), .transport(.requestTimedOut(api: .produce, broker: KafkaBrokerAddress(host: "b", port: 1)))).completed
            == [.init(id: ID(3), outcome: .failed(.abortedAfterEarlierFailure(partition)))])
        #expect(!pipeline.isHolding)
        // A batch enqueued afterwards (a new identity) is sent normally.
        pipeline.enqueue(ID(4), producer: ProducerIdentity(producerId: 8, producerEpoch: 0, baseSequence: 0))
        #expect(pipeline.takeSendable() == [ID(4)])
        #expect(pipeline.answered(ID(4), ok(9)).completed == [.init(id: ID(4), outcome: .acknowledged(baseOffset: Offset(9)))])
    }

    @Test func aFatalFailureWhileHoldingAbortsTheBatchesWaitingForTheirResend() {
        var pipeline = pipeline(3)
        _ = pipeline.answered(ID(1), .response(.notLeaderOrFollower, baseOffset: -1))
        _ = pipeline.answered(ID(2), .response(.outOfOrderSequenceNumber, baseOffset: -1))
        _ = pipeline.answered(ID(3), .response(.outOfOrderSequenceNumber, baseOffset: -1))
        pipeline.resume()
        _ = pipeline.takeSendable()
        let reaction = pipeline.answered(ID(1), .response(.invalidProducerEpoch, baseOffset: -1))
        #expect(reaction.identityFailed)
        #expect(reaction.completed.first == .init(id: ID(1), outcome: .failed(.producerFenced(partition, .invalidProducerEpoch))))
        #expect(pipeline.answered(ID(2), ok(3)).completed.map(\.outcome) == [.acknowledged(baseOffset: Offset(3))], "a success is a success")
        #expect(pipeline.answered(ID(3), .response(.outOfOrderSequenceNumber, baseOffset: -1)).completed.map(\.outcome)
            == [.failed(.abortedAfterEarlierFailure(partition))])
    }

    @Test func refusalsOfTheBytesThemselvesAreFatalNotRetried() {
        for code in [KafkaErrorCode.corruptMessage, .messageTooLarge, .invalidRecord, .unsupportedCompressionType] {
            var pipeline = pipeline(1)
            let reaction = pipeline.answered(ID(1), .response(code, baseOffset: -1))
            #expect(reaction.completed.map(\.outcome) == [.failed(.broker(code, context: "Produce to t-0"))])
            #expect(!reaction.identityFailed)
        }
    }

    @Test func withoutIdempotenceSequenceCodesAreOrdinaryErrors() {
        var pipeline = pipeline(1, idempotent: false)
        let reaction = pipeline.answered(ID(1), .response(.duplicateSequenceNumber, baseOffset: -1))
        #expect(reaction.completed.map(\.outcome) == [.failed(.broker(.duplicateSequenceNumber, context: "Produce to t-0"))])
    }

    @Test func failUnsentFailsOnlyWhatIsNotOnTheWire() {
        var pipeline = ProducePipeline(partition: partition, windowMax: 5, idempotent: true)
        pipeline.enqueue(ID(1), producer: identity(0))
        _ = pipeline.takeSendable()
        pipeline.enqueue(ID(2), producer: identity(1))
        let error = KafkaClientError.unknownTopicOrPartition(topic: "t", partition: 0)
        #expect(pipeline.failUnsent(error).isEmpty, "batch 2 is behind batch 1, still in flight")
        #expect(pipeline.answered(ID(1), ok(0)).completed.map(\.outcome) == [.acknowledged(baseOffset: Offset(0)), .failed(error)])
    }

    @Test func failAllReportsSettledResultsAndFailsTheRest() {
        var pipeline = pipeline(2)
        _ = pipeline.answered(ID(1), .transport(.connectionClosed(broker: KafkaBrokerAddress(host: "b", port: 1))))
        _ = pipeline.answered(ID(2), ok(7))
        let all = pipeline.failAll(.closed)
        #expect(all == [.init(id: ID(1), outcome: .failed(.closed)), .init(id: ID(2), outcome: .acknowledged(baseOffset: Offset(7)))])
        #expect(pipeline.isEmpty && pipeline.inFlightCount == 0)
    }

    @Test func sequencesWrapPastInt32MaxToZero() {
        #expect(KafkaProducer.sequence(after: 10, records: 5) == 15)
        #expect(KafkaProducer.sequence(after: .max - 1, records: 2) == 0)
        #expect(KafkaProducer.sequence(after: .max, records: 3) == 2)
    }
}
