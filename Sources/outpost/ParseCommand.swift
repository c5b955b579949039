import ArgumentParser
import Foundation
import OutpostCore

/// `outpost parse`: what would the gateway make of these readings? One JSON object per point or rejection.
struct ParseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parse",
        abstract: "Parse readings from stdin and print one JSON object per point or rejected line.",
        discussion: """
            Line protocol (default) or JSON readings. Exit status 1 when any line was rejected.
            Points: {"line":N,"measurement":"m","tags":{…},"fields":{"f":{"float":1.5},…},"time":NS}
            Rejections: {"line":N,"column":C,"reason":"…","error":"…"}
            """)

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case lp, json
    }

    @Option(help: "Input format: lp (InfluxDB line protocol) or json.")
    var format: Format = .lp

    @Option(help: "Timestamp unit of line protocol input: ns, us, ms or s.")
    var precision: String = "ns"

    @Option(name: .customLong("default-time"), help: "Time (ns since the epoch) given to points without one. Default: now.")
    var defaultTime: Int64?

    @Option(name: .customLong("max-line-bytes"), help: "Longest accepted line, in bytes.")
    var maxLineBytes: Int = PointLimits.standard.lineBytesMax

    func validate() throws {
        guard TimestampPrecision(parsing: precision) != nil else {
            throw ValidationError("--precision must be one of ns, us, ms, s")
        }
    }

    func run() throws {
        let defaultTime = self.defaultTime ?? Int64(Date().timeIntervalSince1970 * 1e9)
        var limits = PointLimits.standard
        limits.lineBytesMax = maxLineBytes
        let rejected: Int
        switch format {
        case .lp:
            rejected = parseLineProtocol(precision: TimestampPrecision(parsing: precision) ?? .nanoseconds, limits: limits, defaultTime: defaultTime)
        case .json:
            rejected = try parseJSON(limits: limits, defaultTime: defaultTime)
        }
        if rejected > 0 { throw ExitCode(1) }
    }

    /// Streams stdin: complete entries are parsed as they arrive; an entry cut by the end of a chunk is
    /// kept and scanned again with the next one.
    func parseLineProtocol(precision: TimestampPrecision, limits: PointLimits, defaultTime: Int64) -> Int {
        let parser = LineProtocolParser(precision: precision, limits: limits)
        var buffer: [UInt8] = []
        var lineBase = 0
        var rejected = 0
        var endOfInput = false
        while !endOfInput {
            endOfInput = !StandardInput.read(appendingTo: &buffer)
            var consumed = 0
            var lastLine = 1
            buffer.withUnsafeBytes { raw in
                var cursor = LineProtocolCursor()
                while true {
                    let before = cursor
                    guard let entry = parser.nextEntry(in: raw, cursor: &cursor) else {
                        consumed = cursor.position
                        lastLine = cursor.line
                        break
                    }
                    if !entry.terminatedByNewline && !endOfInput && entry.bytes.count <= limits.lineBytesMax {
                        consumed = before.position
                        lastLine = before.line
                        break
                    }
                    let line = lineBase + entry.line
                    switch entry.layout {
                    case .success:
                        do throws(PointParseError) {
                            let point = try parser.parsePoint(line: UnsafeRawBufferPointer(rebasing: raw[entry.bytes]), defaultTimeNanoseconds: defaultTime)
                            Output.line(PointJSON.encode(point, line: line))
                        } catch {
                            Output.line(PointJSON.encode(PointParseError(error.reason, error.detail, line: line, column: error.column)))
                            rejected += 1
                        }
                    case .failure(var error):
                        error.line += lineBase
                        Output.line(PointJSON.encode(error))
                        rejected += 1
                    }
                    consumed = cursor.position
                    lastLine = cursor.line
                }
            }
            buffer.removeSubrange(..<consumed)
            lineBase += lastLine - 1
        }
        return rejected
    }

    /// JSON: one or more documents (objects or arrays), concatenated or one per line.
    func parseJSON(limits: PointLimits, defaultTime: Int64) throws -> Int {
        // Bounded: a JSON stream of readings larger than this is not what `parse` is for.
        let inputBytesMax = 256 << 20
        guard let input = StandardInput.readAll(limit: inputBytesMax) else {
            throw ValidationError("JSON input larger than \(inputBytesMax) bytes")
        }
        let readings = JSONReadingParser(limits: limits)
        var rejected = 0
        input.withUnsafeBytes { raw in
            var position = 0
            var line = 1
            var lineStart = 0
            /// Line and column of an absolute position at or after `position`.
            func locate(_ target: Int) -> (line: Int, column: Int) {
                var targetLine = line
                var targetLineStart = lineStart
                for index in position..<min(target, raw.count) where raw[index] == 0x0A {
                    targetLine += 1
                    targetLineStart = index + 1
                }
                return (targetLine, target - targetLineStart + 1)
            }
            while position < raw.count {
                while position < raw.count, [0x20, 0x09, 0x0D, 0x0A].contains(raw[position]) {
                    if raw[position] == 0x0A {
                        line += 1
                        lineStart = position + 1
                    }
                    position += 1
                }
                guard position < raw.count else { break }
                let start = position
                do throws(JSONSyntaxError) {
                    let (value, end) = try JSONParser().parsePrefix(raw, from: start)
                    for result in readings.readings(in: value, receivedAtNanoseconds: defaultTime, line: line) {
                        switch result {
                        case .success(let point): Output.line(PointJSON.encode(point, line: line))
                        case .failure(var error):
                            // Member positions are offsets into the whole input.
                            (error.line, error.column) = locate(error.column > 1 ? error.column - 1 : start)
                            Output.line(PointJSON.encode(error))
                            rejected += 1
                        }
                    }
                    (line, _) = locate(end)
                    for index in start..<end where raw[index] == 0x0A { lineStart = index + 1 }
                    position = end
                } catch {
                    let (errorLine, column) = locate(error.position)
                    Output.line(PointJSON.encode(PointParseError(.invalidJSON, error.message, line: errorLine, column: column)))
                    rejected += 1
                    // Resume at the line after the error: there is no safe place inside a broken document.
                    position = error.position
                    while position < raw.count, raw[position] != 0x0A { position += 1 }
                    line = errorLine
                    lineStart = position
                }
            }
        }
        return rejected
    }
}
