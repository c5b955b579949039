import Foundation
import OutpostCore
import OutpostLog
import Testing
@testable import OutpostGateway

/// Ingest through real sockets into the real log; the log is read back after an orderly stop.
@Suite struct GatewayIngestTests {
    static let goodLines = (0..<300).map { index in
        "greenhouse,device=gh-\(index % 7),site=north temperature=\(20 + index % 5).5,seq=\(index)i \(1_732_300_000_000_000_000 + index * 1_000_000)"
    }

    @Test func tcpLinesLandWithKeysTimestampsAndOrder() async throws {
        let test = try await TestGateway.start()
        defer { test.cleanUp() }
        let port = try #require(test.gateway.tcpPort)
        // One line without a timestamp gets the receive time; CRLF endings are fine.
        let before = IngestPipeline.wallClockNanoseconds()
        var payload = Self.goodLines.joined(separator: "\n") + "\r\n"
        payload += "greenhouse,device=gh-late temperature=1.5\n"
        try TestSocket.sendTCP(port: port, Array(payload.utf8))
        let after = IngestPipeline.wallClockNanoseconds()
        let partitions = try await test.stopAndReadRecords()
        let all = partitions.flatMap { $0 }
        #expect(all.count == 301)
        // Key = device, partition = murmur2(device) % 3, per-device order kept.
        for (partition, records) in partitions.enumerated() {
            var lastSeq: [String: Int] = [:]
            for record in records {
                let device = try #require(record.keyText)
                #expect(Partitioner.partition(forKey: device, partitionCount: 3) == partition)
                #expect(record.header("gateway") == "test-gw")
                if device == "gh-late" { continue }
                let seq = try #require(Int(record.valueText.split(separator: "seq=")[1].prefix { $0.isNumber }))
                #expect(seq > lastSeq[device, default: -1], "order for \(device)")
                lastSeq[device] = seq
                #expect(Self.goodLines[seq] == record.valueText, "stored bytes are the line as received")
            }
        }
        let late = try #require(all.first { $0.keyText == "gh-late" })
        let stamp = try #require(Int64(late.valueText.split(separator: " ").last ?? ""))
        #expect(stamp >= before && stamp <= after)
        #expect(late.timestampMilliseconds == stamp / 1_000_000)
    }

    @Test func malformedOversizeAndGarbageAreRejectedAndKeptWhileGoodLinesStay() async throws {
        let test = try await TestGateway.start { $0.limits.lineBytesMax = 1024 }
        defer { test.cleanUp() }
        let port = try #require(test.gateway.tcpPort)
        var random = SystemRandomNumberGenerator()
        let garbage = (0..<3000).map { _ in UInt8.random(in: 0...255, using: &random) }.filter { $0 != 0x0A }
        var payload: [UInt8] = []
        payload += Array((Self.goodLines[0] + "\n").utf8)
        payload += Array("this is not line protocol\n".utf8)
        payload += Array((Self.goodLines[1] + "\n").utf8)
        payload += Array(("m,device=big v=\"" + String(repeating: "x", count: 5000) + "\"\n").utf8)  // oversize
        payload += Array((Self.goodLines[2] + "\n").utf8)
        payload += garbage + [0x0A]  // binary garbage: one oversize junk line
        payload += Array((Self.goodLines[3] + "\n").utf8)
        try TestSocket.sendTCP(port: port, payload)
        let records = try await test.stopAndReadRecords().flatMap { $0 }
        #expect(Set(records.map(\.valueText)) == Set(Self.goodLines[0..<4]))
        let rejected = try TestGateway.readRecords(directory: test.directory, topic: "_rejected", partitions: 1)[0]
        #expect(rejected.count == 3)
        let reasons = rejected.compactMap { $0.header("reason") }
        #expect(reasons.contains("invalid_field"))
        #expect(reasons.filter { $0 == "line_too_long" }.count == 2)
        #expect(rejected.allSatisfy { $0.header("listener") == "tcp" })
        #expect(rejected.first?.valueText == "this is not line protocol")
    }

    @Test func udpDatagramsWithManyLines() async throws {
        let test = try await TestGateway.start()
        defer { test.cleanUp() }
        let port = try #require(test.gateway.udpPort)
        var datagrams: [[UInt8]] = []
        for chunk in stride(from: 0, to: 300, by: 30) {
            datagrams.append(Array(Self.goodLines[chunk..<(chunk + 30)].joined(separator: "\n").utf8))
        }
        datagrams.append(Array("garbage datagram\n".utf8))
        datagrams.append(Array("{\"device\":\"json-1\",\"ts\":1732300000000,\"temperature\":21.5,\"seq\":7}".utf8))
        try TestSocket.sendUDP(port: port, datagrams)
        // A datagram still queued in the socket at stop() is never read: wait until the logs hold everything
        // sent (301 points; the garbage datagram in `_rejected`, written by a 100 ms timer), then stop.
        let partitions = test.gateway.pipeline.topicLog.partitions
        let deadLetters = try #require(test.gateway.pipeline.deadLetterTopic?.partitions.first)
        #expect(await eventually {
            partitions.reduce(0) { $0 + $1.logEndOffset.rawValue } >= 301 && deadLetters.logEndOffset.rawValue >= 1
        })
        let records = try await test.stopAndReadRecords().flatMap { $0 }
        #expect(records.count == 301)
        let json = try #require(records.first { $0.keyText == "json-1" })
        #expect(json.valueText == "telemetry,device=json-1 temperature=21.5,seq=7i 1732300000000000000")
        let rejected = try TestGateway.readRecords(directory: test.directory, topic: "_rejected", partitions: 1)[0]
        #expect(rejected.map(\.valueText) == ["garbage datagram"])
    }

    @Test func httpWriteAnswers204OnlyOnceCommittedAndIsAllOrNothing() async throws {
        let test = try await TestGateway.start()
        defer { test.cleanUp() }
        let port = try #require(test.gateway.httpPort)
        let good = Array(Self.goodLines[0..<100].joined(separator: "\n").utf8)
        let accepted = try TestHTTP.post(port: port, path: "/api/v2/write?org=o&bucket=b&precision=ns", body: good)
        #expect(accepted.status == 204)
        // 204 means committed: the durable end already covers the points, before any stop or flush.
        let durable = test.gateway.pipeline.topicLog.partitions.reduce(0) { $0 + $1.durableEndOffset.rawValue }
        #expect(durable == 100)

        // One bad line rejects the whole request: nothing of it is stored.
        var mixed = Self.goodLines[100..<110].joined(separator: "\n") + "\n"
        mixed += "bad line here\n" + Self.goodLines[110]
        let rejected = try TestHTTP.post(port: port, path: "/write?db=telegraf", body: Array(mixed.utf8))
        #expect(rejected.status == 400)
        #expect(rejected.body.contains("\"line\":11"))

        // gzip bodies and v1 precision.
        let seconds = Array("cpu,device=gw-host usage=12.5 1732300000\n".utf8)
        let gzipped = try GzipCompressor(level: 6).compress(seconds)
        let gzipAccepted = try TestHTTP.post(port: port, path: "/write?db=x&precision=s", body: gzipped, headers: ["Content-Encoding": "gzip"])
        #expect(gzipAccepted.status == 204)

        #expect(try TestHTTP.post(port: port, path: "/ping", body: [], method: "GET").status == 204)
        #expect(try TestHTTP.post(port: port, path: "/query?q=CREATE+DATABASE+x", body: []).status == 200)
        #expect(try TestHTTP.post(port: port, path: "/nope", body: []).status == 404)

        let records = try await test.stopAndReadRecords().flatMap { $0 }
        #expect(records.count == 101)
        #expect(!records.contains { $0.valueText.contains("seq=100i") })
        #expect(records.contains { $0.valueText == "cpu,device=gw-host usage=12.5 1732300000000000000" })
    }

    @Test func httpBodiesOverTheLimitGet413() async throws {
        let test = try await TestGateway.start { $0.httpBodyBytesMax = 4096 }
        defer { test.cleanUp() }
        let port = try #require(test.gateway.httpPort)
        let big = Array(Self.goodLines.joined(separator: "\n").utf8)
        #expect(big.count > 4096)
        #expect(try TestHTTP.post(port: port, path: "/api/v2/write", body: big).status == 413)
        // A small gzip body that inflates past the limit is caught after decoding.
        let bomb = try GzipCompressor(level: 9).compress(Array(repeating: UInt8(ascii: "a"), count: 1 << 20))
        #expect(bomb.count < 4096)
        #expect(try TestHTTP.post(port: port, path: "/api/v2/write", body: bomb, headers: ["Content-Encoding": "gzip"]).status == 413)
        let records = try await test.stopAndReadRecords().flatMap { $0 }
        #expect(records.isEmpty)
    }

    @Test func tcpConnectionsBeyondTheLimitAreRefusedAndIdleOnesClosed() async throws {
        let test = try await TestGateway.start {
            $0.tcpConnectionsMax = 2
            $0.tcpIdleTimeoutMilliseconds = 300
        }
        defer { test.cleanUp() }
        let port = try #require(test.gateway.tcpPort)
        func connectTCP() throws -> Int32 {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(result == 0)
            // Generous: on the loaded 2-core CI machine a 300 ms timer has fired 5-10 s late.
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            return descriptor
        }
        /// Whether the gateway closed the connection within the receive timeout: an orderly close (recv
        /// returns 0) or a reset. A timeout (EAGAIN) or data is not a close.
        @Sendable func closedByGateway(_ descriptor: Int32) -> Bool {
            var byte: UInt8 = 0
            let received = recv(descriptor, &byte, 1, 0)
            if received == 0 { return true }
            let code = errno
            if received < 0 && (code == ECONNRESET || code == EPIPE) { return true }
            print("connection-limit test: recv returned \(received), errno \(received < 0 ? code : 0)")
            return false
        }
        let first = try connectTCP()
        let second = try connectTCP()
        try await Task.sleep(for: .milliseconds(50))
        let third = try connectTCP()
        // The blocking receives run on a thread of their own, not on the tests' cooperative pool (two
        // threads here), which the other tests running alongside need too.
        let (thirdClosed, firstClosed, secondClosed, waited) = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                let third = closedByGateway(third)
                // The two admitted ones say nothing: the idle timeout closes them.
                let started = Date()
                let first = closedByGateway(first)
                let second = closedByGateway(second)
                continuation.resume(returning: (third, first, second, Date().timeIntervalSince(started)))
            }
        }
        #expect(thirdClosed, "a connection beyond the limit is closed at once")
        #expect(firstClosed)
        #expect(secondClosed)
        // Nothing else closes a quiet admitted connection: closed at all means closed by the idle timer.
        #expect(waited < 30)
        for descriptor in [first, second, third] { close(descriptor) }
        // Room again once they are gone.
        try TestSocket.sendTCP(port: port, Array((Self.goodLines[0] + "\n").utf8))
        let records = try await test.stopAndReadRecords().flatMap { $0 }
        #expect(records.map(\.valueText) == [Self.goodLines[0]])
    }

    @Test func configurationErrorsNameTheKey() throws {
        do {
            _ = try GatewayConfiguration.parse(yaml: "listeners:\n  tcp:\n    listn: 1.2.3.4:5\n")
            Issue.record("expected a configuration error")
        } catch {
            #expect(error.key == "listeners.tcp.listn")
        }
        do {
            _ = try GatewayConfiguration.parse(yaml: "log:\n  fsync: sometimes\n")
            Issue.record("expected a configuration error")
        } catch {
            #expect(error.key == "log.fsync")
        }
        do {
            _ = try GatewayConfiguration.parse(yaml: "listeners:\n  mqtt:\n    subscriptions:\n      - template: sensors/{field}\n")
            Issue.record("expected a configuration error")
        } catch {
            #expect(error.key == "listeners.mqtt.subscriptions[0].template")
        }
        let configuration = try GatewayConfiguration.parse(yaml: """
            gateway: {id: edge-7, partitions: 6, topic: readings}
            log: {fsync: always, segment_bytes: 8MiB, retention_bytes: 1GiB, recycle_segments: false}
            pipeline: {linger: 10ms, batch_bytes: 128KiB}
            listeners:
              udp: {enabled: false}
              mqtt:
                broker: 10.0.0.2:1884
                client_id: edge-7
                subscriptions:
                  - {topic: "plant/+/readings", format: json}
                  - {template: "site/{site}/{device}/{field}", qos: 0}
            """)
        #expect(configuration.gatewayId == "edge-7")
        #expect(configuration.partitions == 6)
        #expect(configuration.log.fsync == .always)
        #expect(configuration.log.segmentBytesMax == 8 << 20)
        #expect(configuration.log.recycleSegments == false)
        #expect(configuration.lingerMilliseconds == 10)
        #expect(configuration.udp == nil)
        #expect(configuration.mqtt?.broker.port == 1884)
        #expect(configuration.mqtt?.subscriptions.map(\.filter) == ["plant/+/readings", "site/+/+/+"])
    }

    @Test func defaultsAreDesignDefaults() throws {
        let configuration = try GatewayConfiguration.parse(yaml: "")
        #expect(configuration.topic == "telemetry")
        #expect(configuration.tcp?.listen.port == 8094)
        #expect(configuration.udp?.listen.port == 8094)
        #expect(configuration.http?.port == 8086)
        #expect(configuration.metrics?.port == 9100)
        #expect(configuration.mqtt?.broker == .init(host: "127.0.0.1", port: 1883))
        #expect(configuration.mqtt?.subscriptions.map(\.filter) == ["telemetry/#", "sensors/+/+"])
    }
}

@Suite struct SampleConfigurationTests {
    @Test func theShippedSampleParses() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("config/gateway.yaml").path
        let configuration = try GatewayConfiguration.parse(yaml: try String(contentsOfFile: path, encoding: .utf8))
        #expect(configuration.gatewayId == "edge-1")
        #expect(configuration.mqtt?.clientId == "outpost-edge-1")
        #expect(configuration.deadLetterTopic == "_rejected")
        #expect(configuration.log.retentionBytes == 8 << 30)
        // Replication is documented there but off until `--brokers` (or `enabled: true`).
        let replication = try #require(configuration.replication)
        #expect(!replication.enabled)
        #expect(replication.brokers.count == 3)
        #expect(replication.diskBudgetBytes == 6 << 30)
        #expect(replication.overflow == .block)
    }
}
