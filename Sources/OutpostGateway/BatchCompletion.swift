import Foundation
import OutpostLog

/// Someone waiting for their records to be committed: an HTTP write that answers 204 only when every
/// batch holding its points is fsynced. A completion joins each batch its records land in; when the
/// last of them is durable (or one fails) it fires once.
public final class BatchCompletion: @unchecked Sendable {
    private let lock = NSLock()
    private var pendingBatches = 0
    private var sealed = false
    private var failure: LogError?
    private var fired = false
    private let onComplete: @Sendable (Result<Void, LogError>) -> Void

    public init(onComplete: @escaping @Sendable (Result<Void, LogError>) -> Void) {
        self.onComplete = onComplete
    }

    /// A batch now carries some of this completion's records.
    func joinBatch() {
        lock.lock()
        pendingBatches += 1
        lock.unlock()
    }

    /// No more records will be added; fires now if nothing is pending.
    func seal() {
        lock.lock()
        sealed = true
        let ready = pendingBatches == 0 && !fired
        if ready { fired = true }
        let result: Result<Void, LogError> = failure.map { .failure($0) } ?? .success(())
        lock.unlock()
        if ready { onComplete(result) }
    }

    func batchFinished(_ result: Result<Void, LogError>) {
        lock.lock()
        pendingBatches -= 1
        if case .failure(let error) = result, failure == nil { failure = error }
        let ready = sealed && pendingBatches == 0 && !fired
        if ready { fired = true }
        let outcome: Result<Void, LogError> = failure.map { .failure($0) } ?? .success(())
        lock.unlock()
        if ready { onComplete(outcome) }
    }
}
