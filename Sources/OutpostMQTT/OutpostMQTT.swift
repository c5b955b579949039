// OutpostMQTT: an MQTT client over libmosquitto 2.0 (`MQTTClient`): connect with a stable client id and a
// persistent session, subscribe at QoS 1, publish at QoS 0/1 with PUBACK completions, reconnect with
// backoff and resubscribe, TLS and username/password, MQTT v5 with a fall back to 3.1.1.
//
// The only module that imports CMosquitto; no C type leaves it. libmosquitto's packet machinery
// (`mosquitto_loop_read/write/misc`) runs on an `MQTTEventLoop` thread, one per client by default or one
// shared by thousands of clients (the simulator's 10,000 device connections). We do not use
// `mosquitto_loop_start`: its thread runs `mosquitto_loop`, which is built on select(2) and fails with
// MOSQ_ERR_INVAL once the socket's descriptor number reaches FD_SETSIZE (1024) — so a gateway holding a
// thousand TCP connections, or any process with 10,000 clients, would silently lose its MQTT loop. It also
// gives up for good on some errors (a v3-only broker refusing a v5 CONNECT), where we want to fall back and
// carry on. The epoll loop here drives the same libmosquitto functions without either limit.
import CMosquitto

/// `mosquitto_lib_init` exactly once per process: a `static let` initializer runs once, thread-safely
/// (swift_once). The library is never cleaned up; it lives as long as the process.
enum MosquittoLibrary {
    static let initialized: Bool = mosquitto_lib_init() == Int32(MOSQ_ERR_SUCCESS.rawValue)

    /// "2.0.11", for logs and start-up banners.
    static var version: String {
        var major: Int32 = 0
        var minor: Int32 = 0
        var revision: Int32 = 0
        _ = mosquitto_lib_version(&major, &minor, &revision)
        return "\(major).\(minor).\(revision)"
    }
}

