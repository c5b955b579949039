import Foundation
import Logging
import NIOCore
import NIOPosix
import OutpostCore
import OutpostLog
@testable import OutpostGateway

/// A gateway on free loopback ports with a fresh data directory, for in-process tests.
struct TestGateway {
    let gateway: Gateway
    let directory: String

    static func start(_ adjust: (inout GatewayConfiguration) -> Void = { _ in }) async throws -> TestGateway {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("outpost-gw-\(UUID().uuidString.prefix(8))").path
        var configuration = GatewayConfiguration()
        configuration.dataDirectory = directory
        configuration.gatewayId = "test-gw"
        configuration.partitions = 3
        configuration.mqtt = nil
        configuration.metrics = nil
        configuration.tcp = SocketListenerConfiguration(listen: .init(host: "127.0.0.1", port: 0))
        configuration.udp = SocketListenerConfiguration(listen: .init(host: "127.0.0.1", port: 0))
        configuration.http = .init(host: "127.0.0.1", port: 0)
        configuration.deadLetterTopic = "_rejected"
        configuration.log.fsync = .always
        adjust(&configuration)
        var logger = Logger(label: "test.gateway")
        logger.logLevel = .warning
        let gateway = try await Gateway.start(configuration: configuration, registry: nil, logger: logger)
        return TestGateway(gateway: gateway, directory: directory)
    }

    /// Stops the gateway (flush + fsync) and returns every record of the topic, by partition.
    func stopAndReadRecords(topic: String? = nil) async throws -> [[Record]] {
        await gateway.stop()
        return try Self.readRecords(directory: directory, topic: topic ?? gateway.configuration.topic, partitions: topic == "_rejected" ? 1 : gateway.configuration.partitions)
    }

    static func readRecords(directory: String, topic: String, partitions: Int) throws -> [[Record]] {
        var result: [[Record]] = []
        for partition in 0..<partitions {
            let path = LogLayout.partitionDirectory(directory, topic: topic, partition: partition)
            var records: [Record] = []
            guard FileManager.default.fileExists(atPath: path) else {
                result.append([])
                continue
            }
            let log = try PartitionLog.open(directory: path)
            var offset = log.logStartOffset
            while offset < log.logEndOffset {
                let read = try log.read(from: offset, maxBytes: 1 << 20)
                var iterator = RecordBatchIterator(read.bytes)
                while let (_, range) = iterator.next() {
                    records += try RecordBatch.decode(Array(read.bytes[range])).records
                }
                offset = read.nextOffset
            }
            try log.close()
            result.append(records)
        }
        return result
    }

    func cleanUp() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// Polls `condition` until it holds or `seconds` pass: a bound on waiting for the gateway's threads, which a
/// loaded machine can hold up for seconds, not a claim about how fast they are.
func eventually(seconds: Double = 30, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

extension Record {
    var valueText: String { value.map { String(decoding: $0, as: UTF8.self) } ?? "" }
    var keyText: String? { key.map { String(decoding: $0, as: UTF8.self) } }
    func header(_ name: String) -> String? {
        headers.first { $0.key == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Plain blocking sockets for test clients: what a sensor or Telegraf does, without NIO on the client side.
enum TestSocket {
    static func sendTCP(port: Int, _ payload: [UInt8], closeAfter: Bool = true) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var sent = 0
        try payload.withUnsafeBytes { raw in
            while sent < raw.count {
                let result = send(descriptor, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                guard result > 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
                sent += result
            }
        }
        if closeAfter { shutdown(descriptor, Int32(SHUT_WR)) }
        // Wait for the gateway to close its side after reading everything (it closes on our FIN).
        var byte: UInt8 = 0
        _ = recv(descriptor, &byte, 1, 0)
    }

    static func sendUDP(port: Int, _ datagrams: [[UInt8]]) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        for datagram in datagrams {
            _ = datagram.withUnsafeBytes { raw in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(descriptor, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
        }
    }
}

/// A minimal HTTP/1.1 client over a blocking socket (one request per connection).
enum TestHTTP {
    struct Response {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    static func post(port: Int, path: String, body: [UInt8], headers: [String: String] = [:], method: String = "POST") throws -> Response {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EIO) }
        defer { close(descriptor) }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \(body.count)\r\nConnection: close\r\n"
        for (name, value) in headers { request += "\(name): \(value)\r\n" }
        request += "\r\n"
        let bytes = Array(request.utf8) + body
        var sent = 0
        bytes.withUnsafeBytes { raw in
            while sent < raw.count {
                let result = send(descriptor, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if result <= 0 { return }
                sent += result
            }
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count <= 0 { break }
            response += chunk[..<count]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard let headerEnd = text.range(of: "\r\n\r\n") else { throw POSIXError(.EBADMSG) }
        let headerLines = text[..<headerEnd.lowerBound].split(separator: "\r\n")
        let statusParts = headerLines.first?.split(separator: " ") ?? []
        let status = statusParts.count > 1 ? Int(statusParts[1]) ?? 0 : 0
        var responseHeaders: [String: String] = [:]
        for line in headerLines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { responseHeaders[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return Response(status: status, headers: responseHeaders, body: String(text[headerEnd.upperBound...]))
    }
}
