import Dispatch
import Synchronization

/// Lets through at most `perSecond` log lines of one kind per second and counts the rest, so a
/// misbehaving client (or a fuzzer) cannot flood the log; the next line let through says how many were
/// suppressed. Metrics still count every event.
final class LogRateLimiter: Sendable {
    let perSecond: Int

    struct Window {
        var start: UInt64 = 0
        var count = 0
        var suppressed = 0
    }

    private let window = Mutex(Window())

    init(perSecond: Int) { self.perSecond = perSecond }

    /// nil: drop this line. Otherwise the number of lines suppressed since the last one let through.
    func admit() -> Int? {
        let now = DispatchTime.now().uptimeNanoseconds
        return window.withLock { window in
            if now - window.start >= 1_000_000_000 {
                window.start = now
                window.count = 0
            }
            guard window.count < perSecond else {
                window.suppressed += 1
                return nil
            }
            window.count += 1
            defer { window.suppressed = 0 }
            return window.suppressed
        }
    }
}

extension String {
    /// Client-supplied text made safe for one log line: control characters escaped, length capped.
    func sanitizedForLog(maxLength: Int = 128) -> String {
        var out = ""
        for scalar in unicodeScalars.prefix(maxLength) {
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        if unicodeScalars.count > maxLength { out += "…" }
        return out
    }
}
