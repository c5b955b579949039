import CoreMetrics
import Metrics
import OutpostKafka
import Synchronization

/// The broker's metrics, created once (handles are cheap to update, costly to create). Exported by
/// OutpostOperations as `outpost_broker_*` on `/metrics`.
final class BrokerMetrics: Sendable {
    let requests: [Int16: Counter]
    let requestSeconds: [Int16: Metrics.Timer]
    let unsupportedRequests: Counter
    let connections: Gauge
    let connectionsAccepted: Counter
    let connectionsRejected: Counter
    let protocolErrors: Counter
    let bytesIn: Counter
    let bytesOut: Counter
    let producedRecords: Counter
    let producedBytes: Counter
    let produceDuplicates: Counter
    let produceRejected = Mutex<[String: Counter]>([:])
    let fetchedBytes: Counter
    let fetchWaitersExhaustedCounter: Counter
    let saslAuthenticated: Counter
    let saslFailures: [SASLServerStateMachine.FailureReason: Counter]
    let tlsHandshakeFailures: Counter
    let connectionSetupTimeouts: Counter
    private let openConnections = Atomic<Int>(0)

    init() {
        var requests: [Int16: Counter] = [:]
        var seconds: [Int16: Metrics.Timer] = [:]
        for key in KafkaAPIKey.allCases {
            requests[key.rawValue] = Counter(label: "outpost_broker_requests_total", dimensions: [("api", key.name)])
            seconds[key.rawValue] = Metrics.Timer(label: "outpost_broker_request_seconds", dimensions: [("api", key.name)])
        }
        self.requests = requests
        self.requestSeconds = seconds
        unsupportedRequests = Counter(label: "outpost_broker_requests_unsupported_total")
        connections = Gauge(label: "outpost_broker_connections")
        connectionsAccepted = Counter(label: "outpost_broker_connections_accepted_total")
        connectionsRejected = Counter(label: "outpost_broker_connections_rejected_total")
        protocolErrors = Counter(label: "outpost_broker_protocol_errors_total")
        bytesIn = Counter(label: "outpost_broker_received_bytes_total")
        bytesOut = Counter(label: "outpost_broker_sent_bytes_total")
        producedRecords = Counter(label: "outpost_broker_produced_records_total")
        producedBytes = Counter(label: "outpost_broker_produced_bytes_total")
        produceDuplicates = Counter(label: "outpost_broker_produce_duplicates_total")
        fetchedBytes = Counter(label: "outpost_broker_fetched_bytes_total")
        fetchWaitersExhaustedCounter = Counter(label: "outpost_broker_fetch_waiters_exhausted_total")
        saslAuthenticated = Counter(label: "outpost_broker_sasl_authentications_total")
        saslFailures = Dictionary(uniqueKeysWithValues: SASLServerStateMachine.FailureReason.allCases.map { reason in
            (reason, Counter(label: "outpost_broker_sasl_authentication_failures_total", dimensions: [("reason", reason.rawValue)]))
        })
        tlsHandshakeFailures = Counter(label: "outpost_broker_tls_handshake_failures_total")
        connectionSetupTimeouts = Counter(label: "outpost_broker_connection_setup_timeouts_total")
    }

    /// A connection refused during SASL set-up (wrong password, request out of turn, timeout, …).
    func saslFailed(_ reason: SASLServerStateMachine.FailureReason) { saslFailures[reason]?.increment() }

    func request(_ key: KafkaAPIKey, nanoseconds: Int64) {
        requests[key.rawValue]?.increment()
        requestSeconds[key.rawValue]?.recordNanoseconds(nanoseconds)
    }

    /// Counts an accepted connection; false (and counted as rejected) beyond `limit`.
    func connectionOpened(limit: Int) -> Bool {
        let open = openConnections.add(1, ordering: .relaxed).newValue
        guard open <= limit else {
            openConnections.subtract(1, ordering: .relaxed)
            connectionsRejected.increment()
            return false
        }
        connectionsAccepted.increment()
        connections.record(open)
        return true
    }

    func connectionClosed() {
        connections.record(openConnections.subtract(1, ordering: .relaxed).newValue)
    }

    var openConnectionCount: Int { openConnections.load(ordering: .relaxed) }

    func produced(records: Int, bytes: Int) {
        producedRecords.increment(by: records)
        producedBytes.increment(by: bytes)
    }

    func produceDuplicate() { produceDuplicates.increment() }

    func produceRejected(reason: String) {
        let counter = produceRejected.withLock { counters in
            if let counter = counters[reason] { return counter }
            let counter = Counter(label: "outpost_broker_produce_rejected_total", dimensions: [("reason", reason)])
            counters[reason] = counter
            return counter
        }
        counter.increment()
    }

    func fetched(bytes: Int) { fetchedBytes.increment(by: bytes) }
    func fetchWaitersExhausted() { fetchWaitersExhaustedCounter.increment() }
}
