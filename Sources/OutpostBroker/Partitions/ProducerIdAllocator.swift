import OutpostCore
import Synchronization

/// Hands out unique, increasing producer ids (InitProducerId), surviving restarts.
///
/// Ids are reserved in blocks: before handing out an id of a new block, the block's end is written
/// durably to `<data-dir>/producer-id-block`. After a restart allocation resumes at the recorded end (and
/// past any id found in the logs), so an id is never given to two producers even after a crash. A block
/// of 1000 costs one fsync per 1000 producers.
final class ProducerIdAllocator: Sendable {
    static let blockSize: Int64 = 1_000
    let path: String

    struct State {
        var next: Int64
        var reservedEnd: Int64
    }

    private let state: Mutex<State>

    init(dataDirectory: String, largestStoredId: ProducerID?) throws(BrokerError) {
        path = dataDirectory + "/producer-id-block"
        var next: Int64 = 0
        if let bytes = try DurableFile.read(path) {
            guard let text = String(validating: bytes, as: UTF8.self),
                let recorded = Int64(text.split(whereSeparator: \.isNewline).first ?? ""), recorded >= 0
            else {
                throw .corruptFile(path: path, reason: "expected one non-negative integer")
            }
            next = recorded
        }
        if let largestStoredId { next = max(next, largestStoredId.rawValue + 1) }
        state = Mutex(State(next: next, reservedEnd: next))
    }

    /// The next id. Blocks for one small fsync at the start of each block: call it off the event loops.
    func allocate() throws(BrokerError) -> ProducerID {
        try state.withLock { (state) throws(BrokerError) -> ProducerID in
            if state.next >= state.reservedEnd {
                let end = state.next + Self.blockSize
                try DurableFile.replace(path, with: Array("\(end)\n".utf8))
                state.reservedEnd = end
            }
            defer { state.next += 1 }
            return ProducerID(state.next)
        }
    }
}
