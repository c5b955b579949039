// A deliberately cheap load generator for the gateway benchmarks: lines are generated once, then the same
// buffers are written to sockets, so nearly all of its CPU goes to system calls and the gateway gets the rest
// of the machine.
//
//   outpost-load tcp  --port P [--connections 2] [--points N] [--rate R]
//   outpost-load udp  --port P [--points N] [--rate R] [--lines-per-datagram 12]
//   outpost-load http --port P [--points N] [--lines-per-request 5000] [--connections 2]
//   outpost-load mqtt --port P [--points N]        (QoS 1 publishes to telemetry/bench, waits for every PUBACK)
//   outpost-load mqtt-count --port P [--points N]  (QoS 1 subscriber that only counts, until N arrived)
//
// Prints one JSON line: points sent, seconds, points/s. --rate 0 (default) sends as fast as possible.
import Foundation
import OutpostMQTT

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var mode = "tcp"
    var port = 8094
    var connections = 2
    var points = 5_000_000
    var rate = 0.0
    var linesPerDatagram = 12
    var linesPerRequest = 5000
    var devices = 10_000

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        mode = iterator.next() ?? "tcp"
        while let argument = iterator.next() {
            let value = iterator.next() ?? ""
            switch argument {
            case "--port": port = Int(value) ?? port
            case "--connections": connections = Int(value) ?? connections
            case "--points": points = Int(value) ?? points
            case "--rate": rate = Double(value) ?? rate
            case "--lines-per-datagram": linesPerDatagram = Int(value) ?? linesPerDatagram
            case "--lines-per-request": linesPerRequest = Int(value) ?? linesPerRequest
            case "--devices": devices = Int(value) ?? devices
            default:
                FileHandle.standardError.write(Data("unknown option \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

/// ~100-byte points with distinct devices and sequence numbers.
func line(_ index: Int, devices: Int) -> String {
    let device = "gh-\(String(format: "%05d", index % devices))"
    return "greenhouse,device=\(device),site=north temperature=\(18 + index % 9).\(index % 97),humidity=4\(index % 10).2,seq=\(index / devices)i \(1_732_300_000_000_000_000 + index)"
}

func connectTCP(port: Int) -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let result = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    precondition(result == 0, "connect to 127.0.0.1:\(port) failed: errno \(errno)")
    return descriptor
}

func sendAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer) {
    var sent = 0
    while sent < bytes.count {
        let result = send(descriptor, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
        precondition(result > 0, "send failed: errno \(errno)")
        sent += result
    }
}

/// Paces a sender to `rate` units per second (0: no pacing).
struct Pacer {
    let rate: Double
    let start = DispatchTime.now().uptimeNanoseconds
    func wait(untilSent sent: Int) {
        guard rate > 0 else { return }
        let due = start + UInt64(Double(sent) / rate * 1e9)
        let now = DispatchTime.now().uptimeNanoseconds
        if due > now { usleep(useconds_t(min((due - now) / 1000, 1_000_000))) }
    }
}

let options = Options(CommandLine.arguments)
let started = DispatchTime.now().uptimeNanoseconds
/// Points sent, summed across sender threads.
final class SentCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var total = 0
    func add(_ count: Int) { lock.lock(); total += count; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return total }
}
let sentCounter = SentCounter()
var sentPoints: Int { sentCounter.value }

switch options.mode {
case "tcp":
    // One 1 MiB buffer of whole lines per connection, sent over and over.
    let perConnection = options.points / options.connections
    let group = DispatchGroup()
    for connection in 0..<options.connections {
        group.enter()
        Thread.detachNewThread {
            var text = ""
            var lines = 0
            while text.utf8.count < 1 << 20 {
                text += line(connection * 1_000_003 + lines, devices: options.devices) + "\n"
                lines += 1
            }
            let buffer = Array(text.utf8)
            let descriptor = connectTCP(port: options.port)
            let pacer = Pacer(rate: options.rate / Double(options.connections))
            var sent = 0
            buffer.withUnsafeBytes { raw in
                while sent + lines <= perConnection {
                    pacer.wait(untilSent: sent)
                    sendAll(descriptor, raw)
                    sent += lines
                }
            }
            shutdown(descriptor, Int32(SHUT_WR))
            var byte: UInt8 = 0
            _ = recv(descriptor, &byte, 1, 0)  // the gateway closes after reading everything
            close(descriptor)
            sentCounter.add(sent)
            group.leave()
        }
    }
    group.wait()
case "udp":
    let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(options.port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let datagrams = (0..<256).map { datagram in
        Array((0..<options.linesPerDatagram).map { line(datagram * options.linesPerDatagram + $0, devices: options.devices) }.joined(separator: "\n").utf8)
    }
    let pacer = Pacer(rate: options.rate)
    var index = 0
    while sentPoints < options.points {
        pacer.wait(untilSent: sentPoints)
        let datagram = datagrams[index % datagrams.count]
        index += 1
        let result = datagram.withUnsafeBytes { raw in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
        if result > 0 { sentCounter.add(options.linesPerDatagram) }
    }
    close(descriptor)
case "http":
    let requests = options.points / options.linesPerRequest
    let group = DispatchGroup()
    for connection in 0..<options.connections {
        group.enter()
        Thread.detachNewThread {
            let body = Array((0..<options.linesPerRequest).map { line(connection * 1_000_003 + $0, devices: options.devices) }.joined(separator: "\n").utf8)
            let head = Array("POST /api/v2/write?precision=ns HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
            let descriptor = connectTCP(port: options.port)
            var response = [UInt8](repeating: 0, count: 4096)
            var done = 0
            for _ in stride(from: connection, to: requests, by: options.connections) {
                (head + body).withUnsafeBytes { sendAll(descriptor, $0) }
                let count = recv(descriptor, &response, response.count, 0)
                precondition(count > 12 && response[9] == UInt8(ascii: "2"), "HTTP write failed: \(String(decoding: response.prefix(max(count, 0)), as: UTF8.self))")
                done += options.linesPerRequest
            }
            close(descriptor)
            sentCounter.add(done)
            group.leave()
        }
    }
    group.wait()
case "mqtt":
    // One client, QoS 1, as many publishes pending as the client allows; each message one point.
    var configuration = MQTTConfiguration(host: "127.0.0.1", port: options.port, clientID: "outpost-load-\(getpid())", cleanSession: true)
    configuration.limits.inflightMessagesMax = 1000
    let client = try MQTTClient(configuration: configuration)
    client.start()
    precondition(client.waitUntilConnected(timeoutSeconds: 10), "MQTT connect failed")
    let payloads = (0..<4096).map { Array(line($0, devices: options.devices).utf8) }
    var index = 0
    while index < options.points {
        do throws(MQTTError) {
            try client.publish(topic: "telemetry/bench", payload: payloads[index % payloads.count], qos: .atLeastOnce)
            index += 1
        } catch {
            guard case .publishWindowFull = error else { fatalError("publish failed: \(error)") }
            usleep(200)
        }
    }
    let unfinished = client.waitForPendingPublishes(timeoutSeconds: 300)
    precondition(unfinished == 0, "\(unfinished) publishes were not acknowledged")
    sentCounter.add(index)
    client.stop()
case "mqtt-count":
    // The reference: what mosquitto alone delivers to a subscriber that does nothing but count.
    let received = SentCounter()
    let done = DispatchSemaphore(value: 0)
    let target = options.points
    let configuration = MQTTConfiguration(host: "127.0.0.1", port: options.port, clientID: "outpost-count-\(getpid())", cleanSession: true)
    let client = try MQTTClient(configuration: configuration, handlers: .init(onMessage: { _ in
        received.add(1)
        if received.value == target { done.signal() }
    }))
    try client.subscribe([MQTTSubscription("telemetry/#", qos: .atLeastOnce)])
    client.start()
    precondition(client.waitUntilConnected(timeoutSeconds: 10), "MQTT connect failed")
    FileHandle.standardOutput.write(Data("{\"subscribed\":true}\n".utf8))
    done.wait()
    sentCounter.add(received.value)
    client.stop()
default:
    FileHandle.standardError.write(Data("mode must be tcp, udp, http, mqtt or mqtt-count\n".utf8))
    exit(2)
}

let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
print("{\"mode\":\"\(options.mode)\",\"points\":\(sentPoints),\"seconds\":\(String(format: "%.3f", seconds)),\"points_per_second\":\(Int(Double(sentPoints) / seconds))}")
