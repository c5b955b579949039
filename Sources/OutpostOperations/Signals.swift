import Dispatch

#if canImport(Glibc)
import Glibc
#endif

/// Waits for process signals without a global handler: the signal is blocked from default handling and
/// delivered to a dispatch source.
public enum ProcessSignals {
    /// Takes over SIGTERM and SIGINT now (call it before announcing readiness, or an early signal still
    /// gets the default action and kills the process mid-way); await `next` for the first arrival.
    public static func shutdownRequests() -> ShutdownRequests {
        ShutdownRequests(stream: signals([SIGTERM, SIGINT]))
    }

    public struct ShutdownRequests: Sendable {
        let stream: AsyncStream<Int32>

        /// Returns when SIGTERM or SIGINT arrives, with the signal's number.
        public func next() async -> Int32 {
            for await signal in stream { return signal }
            return SIGTERM
        }
    }

    /// Every arrival of one of `numbers`, as a stream (e.g. SIGHUP for reloads). Bounded: arrivals beyond
    /// the 8 not yet consumed are dropped, since a signal only says "something happened".
    public static func signals(_ numbers: [Int32]) -> AsyncStream<Int32> {
        AsyncStream(bufferingPolicy: .bufferingNewest(8)) { continuation in
            var sources: [any DispatchSourceSignal] = []
            for number in numbers {
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { continuation.yield(number) }
                source.resume()
                sources.append(source)
            }
            let held = SourcesBox(sources)
            continuation.onTermination = { _ in held.cancel() }
        }
    }
}

private final class SourcesBox: @unchecked Sendable {
    let sources: [any DispatchSourceSignal]
    init(_ sources: [any DispatchSourceSignal]) { self.sources = sources }
    func cancel() { for source in sources { source.cancel() } }
}
