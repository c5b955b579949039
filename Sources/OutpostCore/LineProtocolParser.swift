// Reading InfluxDB line protocol: `validate` for the gateway's hot path (no allocation, positions only),
// `parsePoint` and `parse` for whoever needs `Point` values. Both run `LineProtocolScanner`, so what one
// accepts the other accepts. The accepted language is exactly that of InfluxData's reference decoder
// (influxdata/line-protocol v2), checked against its corpus in the tests.

/// Where the parts of a valid line are, as byte offsets into the buffer that was validated.
/// Names are still escaped; `LineProtocolElement.unescaped(_:)` turns a range into its bytes.
public struct LineLayout: Hashable, Sendable {
    /// The measurement name (escaped).
    public var measurement: Range<Int>
    public var tagCount: Int
    public var fieldCount: Int
    /// The value (escaped) of the tag whose key is the requested device tag key, when present.
    public var deviceTagValue: Range<Int>?
    /// One past the last byte of the field set: where a timestamp would be appended.
    public var fieldSetEnd: Int
    /// The timestamp scaled to nanoseconds, when the line has one.
    public var timestampNanoseconds: Int64?

    public var hasTimestamp: Bool { timestampNanoseconds != nil }

    public init(
        measurement: Range<Int>, tagCount: Int, fieldCount: Int, deviceTagValue: Range<Int>?, fieldSetEnd: Int,
        timestampNanoseconds: Int64?
    ) {
        self.measurement = measurement
        self.tagCount = tagCount
        self.fieldCount = fieldCount
        self.deviceTagValue = deviceTagValue
        self.fieldSetEnd = fieldSetEnd
        self.timestampNanoseconds = timestampNanoseconds
    }
}

/// The outcome of one entry of a multi-line text.
public enum LineOutcome: Hashable, Sendable {
    /// A point, with the 1-based line its entry starts on.
    case point(Point, line: Int)
    case rejected(PointParseError)
}

/// Where to go on reading a buffer of many lines. Its position is always the start of a physical line.
public struct LineProtocolCursor: Hashable, Sendable {
    /// Byte offset at which the next entry is looked for.
    public var position: Int
    /// 1-based number of the line that starts at `position`.
    public var line: Int

    public init(position: Int = 0, line: Int = 1) {
        self.position = position
        self.line = line
    }
}

/// One entry found in a buffer of many lines: where it is and whether it is valid.
public struct LineProtocolEntry: Hashable, Sendable {
    /// The entry's bytes: from its measurement to the end of its timestamp (or field set) when valid; to
    /// the end of the line when not. Line endings are never included. Keep these bytes to store or
    /// dead-letter the entry.
    public var bytes: Range<Int>
    /// 1-based line the entry starts on. An entry spans several lines when a string field holds newlines.
    public var line: Int
    /// False when the entry ran into the end of the buffer rather than a newline. A stream reader that may
    /// receive more bytes should keep such a tail and scan it again with them.
    public var terminatedByNewline: Bool
    public var layout: Result<LineLayout, PointParseError>
}

public struct LineProtocolParser: Sendable {
    /// The unit of written timestamps.
    public var precision: TimestampPrecision
    public var limits: PointLimits

    public init(precision: TimestampPrecision = .nanoseconds, limits: PointLimits = .standard) {
        self.precision = precision
        self.limits = limits
    }

    // MARK: Hot path

    /// Checks one line (an entry; no trailing newline needed) in place and reports where its parts are,
    /// without allocating. (The one exception: a float that needs the exact slow conversion - more than 19
    /// significant digits, or a decimal exponent beyond ±22, written in more than 15 bytes - briefly
    /// allocates a String; building the error of a rejected line allocates too.) Leading spaces and
    /// trailing blank or comment lines are tolerated; a second point is not. `deviceTagKey` is the
    /// unescaped key of the tag whose value the caller wants located.
    public func validate(line: UnsafeRawBufferPointer, deviceTagKey: [UInt8]? = nil) throws(PointParseError) -> LineLayout {
        var recorder = LineLayoutRecorder(bytes: line, deviceTagKey: deviceTagKey)
        try scanSingleLine(line, visitor: &recorder)
        return recorder.layout
    }

    /// Finds, checks and locates the next entry of a buffer holding many lines, skipping blank and comment
    /// lines, and moves `cursor` past it. Returns nil when no entry is left. Allocates only to describe a
    /// rejected entry.
    public func nextEntry(
        in buffer: UnsafeRawBufferPointer, cursor: inout LineProtocolCursor, deviceTagKey: [UInt8]? = nil
    ) -> LineProtocolEntry? {
        var recorder = LineLayoutRecorder(bytes: buffer, deviceTagKey: deviceTagKey)
        guard let scanned = scanNext(in: buffer, cursor: &cursor, visitor: &recorder) else { return nil }
        let layout: Result<LineLayout, PointParseError> = scanned.error.map { .failure($0) } ?? .success(recorder.layout)
        return LineProtocolEntry(
            bytes: scanned.entry.start..<scanned.entry.end, line: scanned.line,
            terminatedByNewline: scanned.entry.terminatedByNewline, layout: layout)
    }

    // MARK: Points

    /// Decodes one line (an entry) into a Point. Its timestamp is scaled to nanoseconds; a line without one
    /// gets `defaultTimeNanoseconds` truncated to the precision (as the reference decoder does), or no
    /// timestamp when that is nil.
    public func parsePoint(line: UnsafeRawBufferPointer, defaultTimeNanoseconds: Int64? = nil) throws(PointParseError) -> Point {
        var builder = PointBuilder(bytes: line)
        try scanSingleLine(line, visitor: &builder)
        return builder.point(defaultTimeNanoseconds: defaultTimestamp(defaultTimeNanoseconds))
    }

    /// Decodes a text of many lines: one outcome per entry, in order. Blank and comment lines produce
    /// nothing; a bad entry is rejected without disturbing the entries around it.
    public func parse(_ text: [UInt8], defaultTimeNanoseconds: Int64? = nil) -> [LineOutcome] {
        let defaultTime = defaultTimestamp(defaultTimeNanoseconds)
        return text.withUnsafeBytes { buffer in
            var outcomes: [LineOutcome] = []
            // Every entry ends at a newline or at the end: sized once instead of regrown (and re-faulted).
            outcomes.reserveCapacity(Self.newlineCount(buffer) + 1)
            var cursor = LineProtocolCursor()
            var builder = PointBuilder(bytes: buffer)
            while true {
                builder.startEntry()
                guard let scanned = scanNext(in: buffer, cursor: &cursor, visitor: &builder) else { break }
                if let error = scanned.error {
                    outcomes.append(.rejected(error))
                } else {
                    outcomes.append(.point(builder.point(defaultTimeNanoseconds: defaultTime), line: scanned.line))
                }
            }
            return outcomes
        }
    }

    private static func newlineCount(_ buffer: UnsafeRawBufferPointer) -> Int {
        var count = 0
        for byte in buffer where byte == LineProtocolByte.newline { count += 1 }
        return count
    }

    // MARK: Conveniences

    public func validate(line: [UInt8], deviceTagKey: [UInt8]? = nil) throws(PointParseError) -> LineLayout {
        try line.withUnsafeBytes { buffer in
            Result { () throws(PointParseError) in try validate(line: buffer, deviceTagKey: deviceTagKey) }
        }.get()
    }

    public func parsePoint(_ line: String, defaultTimeNanoseconds: Int64? = nil) throws(PointParseError) -> Point {
        try Array(line.utf8).withUnsafeBytes { buffer in
            Result { () throws(PointParseError) in try parsePoint(line: buffer, defaultTimeNanoseconds: defaultTimeNanoseconds) }
        }.get()
    }

    public func parse(_ text: String, defaultTimeNanoseconds: Int64? = nil) -> [LineOutcome] {
        parse(Array(text.utf8), defaultTimeNanoseconds: defaultTimeNanoseconds)
    }

    // MARK: Shared driving of the scanner

    private func scanner(for buffer: UnsafeRawBufferPointer) -> LineProtocolScanner? {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return nil }
        return LineProtocolScanner(bytes: base, count: buffer.count, nanosecondsPerUnit: precision.nanosecondsPerUnit, limits: limits)
    }

    /// One entry that must make up the whole of `line` (apart from blank and comment lines).
    @inline(__always)
    func scanSingleLine<Visitor: LineProtocolEntryVisitor>(
        _ line: UnsafeRawBufferPointer, visitor: inout Visitor
    ) throws(PointParseError) {
        if line.count > limits.lineBytesMax {
            throw parseError(.lineTooLong(limit: limits.lineBytesMax), at: limits.lineBytesMax, in: line, lineStart: 0, line: 1)
        }
        guard let scanner = scanner(for: line), let start = scanner.skipToEntry(from: 0) else {
            throw parseError(.noPoint, at: 0, in: line, lineStart: 0, line: 1)
        }
        let entry = scanner.scanEntry(at: start.position, visitor: &visitor)
        if let failure = entry.failure {
            throw parseError(failure.problem, at: failure.position, in: line, lineStart: 0, line: 1)
        }
        if entry.resume < line.count, let extra = scanner.skipToEntry(from: entry.resume) {
            throw parseError(.secondPoint, at: extra.position, in: line, lineStart: 0, line: 1)
        }
    }

    /// The next entry from `cursor`, with its line and its error (if any) located; advances the cursor.
    func scanNext<Visitor: LineProtocolEntryVisitor>(
        in buffer: UnsafeRawBufferPointer, cursor: inout LineProtocolCursor, visitor: inout Visitor
    ) -> (entry: ScannedEntry, line: Int, error: PointParseError?)? {
        guard cursor.position >= 0, cursor.position < buffer.count, let scanner = scanner(for: buffer),
              let start = scanner.skipToEntry(from: cursor.position)
        else {
            cursor.position = max(cursor.position, buffer.count)
            return nil
        }
        let line = cursor.line + start.newlinesSkipped
        let entry = scanner.scanEntry(at: start.position, visitor: &visitor)
        cursor.position = entry.resume
        cursor.line = line + entry.newlines
        var error: PointParseError? = nil
        if entry.end - entry.start > limits.lineBytesMax {
            error = parseError(
                .lineTooLong(limit: limits.lineBytesMax), at: entry.start + limits.lineBytesMax, in: buffer,
                lineStart: start.lineStart, line: line)
        } else if let failure = entry.failure {
            error = parseError(failure.problem, at: failure.position, in: buffer, lineStart: start.lineStart, line: line)
        }
        return (entry, line, error)
    }

    /// Turns a problem at byte `position` into an error with a 1-based line and byte column, counting the
    /// newlines between the start of the entry's first line (`lineStart`, numbered `line`) and `position`.
    private func parseError(
        _ problem: LineProtocolProblem, at position: Int, in buffer: UnsafeRawBufferPointer, lineStart: Int, line: Int
    ) -> PointParseError {
        var currentLine = line
        var currentLineStart = lineStart
        var index = lineStart
        let end = min(position, buffer.count)
        while index < end {
            if buffer[index] == LineProtocolByte.newline {
                currentLine += 1
                currentLineStart = index + 1
            }
            index += 1
        }
        return PointParseError(problem.reason, problem.detail(in: buffer), line: currentLine, column: position - currentLineStart + 1)
    }

    /// The reference decoder gives a point without a timestamp the default time truncated to the
    /// precision (rounded down).
    private func defaultTimestamp(_ nanoseconds: Int64?) -> Int64? {
        guard let nanoseconds else { return nil }
        let unit = precision.nanosecondsPerUnit
        var units = nanoseconds / unit
        if nanoseconds % unit < 0 { units -= 1 }
        let (truncated, overflow) = units.multipliedReportingOverflow(by: unit)
        return overflow ? (units + 1) * unit : truncated
    }
}

// MARK: Visitors

/// Records where the parts of an entry are; allocates nothing.
struct LineLayoutRecorder: LineProtocolEntryVisitor {
    let bytes: UnsafeRawBufferPointer
    let deviceTagKey: [UInt8]?
    var layout = LineLayout(measurement: 0..<0, tagCount: 0, fieldCount: 0, deviceTagValue: nil, fieldSetEnd: 0, timestampNanoseconds: nil)

    init(bytes: UnsafeRawBufferPointer, deviceTagKey: [UInt8]?) {
        self.bytes = bytes
        self.deviceTagKey = deviceTagKey
    }

    mutating func visitMeasurement(_ name: ScannedToken) {
        layout.measurement = name.range
    }

    mutating func visitTag(key: ScannedToken, value: ScannedToken) {
        layout.tagCount += 1
        if let wanted = deviceTagKey, layout.deviceTagValue == nil, key.hasBackslash || key.end - key.start == wanted.count,
           LineProtocolElement.tagKey.unescapedEquals(UnsafeRawBufferPointer(rebasing: bytes[key.range]), wanted) {
            layout.deviceTagValue = value.range
        }
    }

    mutating func visitField(key: ScannedToken, value: ScannedFieldValue) {
        layout.fieldCount += 1
    }

    mutating func visitFieldSetEnd(_ position: Int) {
        layout.fieldSetEnd = position
    }

    mutating func visitTimestamp(nanoseconds: Int64) {
        layout.timestampNanoseconds = nanoseconds
    }
}

/// Builds Points from entries' parts, unescaping names and strings. One builder serves a whole buffer,
/// entry after entry (`startEntry` between them): its tag and field lists are scratch space, and each
/// point gets arrays of just its size.
///
/// Telemetry repeats its names from line to line (the same measurement, tag keys, field keys, often the
/// same tag values), so the builder remembers, per position in the entry, the last name it decoded and
/// where in the buffer it stood; when the bytes at the new position are the same, the string is reused
/// rather than decoded again. Same element kind and same bytes give the same string, so this changes
/// nothing but the cost.
struct PointBuilder: LineProtocolEntryVisitor {
    let bytes: UnsafeRawBufferPointer
    var measurement = ""
    var tags: [Tag] = []
    var fields: [Field] = []
    var timestampNanoseconds: Int64? = nil
    private var recentNames: [RecentName] = []

    /// A decoded name and where the bytes it was decoded from are.
    private struct RecentName {
        var start: Int
        var count: Int
        var string: String
    }

    /// Positions remembered: the measurement, then per tag its key and value, then per field its key.
    private static let rememberedTags = 16
    private static let rememberedFields = 16

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func startEntry() {
        measurement = ""
        tags.removeAll(keepingCapacity: true)
        fields.removeAll(keepingCapacity: true)
        timestampNanoseconds = nil
    }

    func point(defaultTimeNanoseconds: Int64?) -> Point {
        Point(
            measurement: measurement, tags: Self.exactCopy(tags), fields: Self.exactCopy(fields),
            timestampNanoseconds: timestampNanoseconds ?? defaultTimeNanoseconds)
    }

    /// A copy with capacity for just its elements (the scratch lists keep their larger capacity).
    private static func exactCopy(_ tags: [Tag]) -> [Tag] {
        var copy: [Tag] = []
        copy.reserveCapacity(tags.count)
        for tag in tags { copy.append(tag) }
        return copy
    }

    private static func exactCopy(_ fields: [Field]) -> [Field] {
        var copy: [Field] = []
        copy.reserveCapacity(fields.count)
        for field in fields { copy.append(field) }
        return copy
    }

    mutating func visitMeasurement(_ name: ScannedToken) {
        measurement = recentOrDecoded(name, .measurement, slot: 0)
    }

    mutating func visitTag(key: ScannedToken, value: ScannedToken) {
        if tags.isEmpty { tags.reserveCapacity(8) }
        let index = tags.count
        let remembered = index < Self.rememberedTags
        tags.append(Tag(
            remembered ? recentOrDecoded(key, .tagKey, slot: 1 + 2 * index) : string(key, .tagKey),
            remembered ? recentOrDecoded(value, .tagValue, slot: 2 + 2 * index) : string(value, .tagValue)))
    }

    mutating func visitField(key: ScannedToken, value: ScannedFieldValue) {
        let fieldValue: FieldValue
        switch value {
        case .float(let number): fieldValue = .float(number)
        case .int(let number): fieldValue = .int(number)
        case .uint(let number): fieldValue = .uint(number)
        case .bool(let truth): fieldValue = .bool(truth)
        case .string(let content): fieldValue = .string(string(content, .stringFieldValue))
        }
        if fields.isEmpty { fields.reserveCapacity(8) }
        let index = fields.count
        let keyString = index < Self.rememberedFields
            ? recentOrDecoded(key, .fieldKey, slot: 1 + 2 * Self.rememberedTags + index) : string(key, .fieldKey)
        fields.append(Field(keyString, fieldValue))
    }

    mutating func visitFieldSetEnd(_ position: Int) {}

    mutating func visitTimestamp(nanoseconds: Int64) {
        timestampNanoseconds = nanoseconds
    }

    /// The string of a name at remembered position `slot`: the one decoded last time when its bytes are
    /// the same, else freshly decoded (and remembered).
    private mutating func recentOrDecoded(_ token: ScannedToken, _ element: LineProtocolElement, slot: Int) -> String {
        let count = token.end - token.start
        if slot < recentNames.count {
            let recent = recentNames[slot]
            if recent.count == count, let base = bytes.baseAddress, Self.sameBytes(base, recent.start, token.start, count) {
                return recent.string
            }
        } else {
            recentNames.reserveCapacity(1 + 2 * Self.rememberedTags + Self.rememberedFields)
            while recentNames.count <= slot { recentNames.append(RecentName(start: 0, count: -1, string: "")) }
        }
        let decoded = string(token, element)
        recentNames[slot] = RecentName(start: token.start, count: count, string: decoded)
        return decoded
    }

    @inline(__always)
    private static func sameBytes(_ base: UnsafeRawPointer, _ first: Int, _ second: Int, _ count: Int) -> Bool {
        var index = 0
        while index + 8 <= count {
            if base.loadUnaligned(fromByteOffset: first + index, as: UInt64.self)
                != base.loadUnaligned(fromByteOffset: second + index, as: UInt64.self) { return false }
            index += 8
        }
        while index < count {
            if base.load(fromByteOffset: first + index, as: UInt8.self) != base.load(fromByteOffset: second + index, as: UInt8.self) {
                return false
            }
            index += 1
        }
        return true
    }

    /// The unescaped text of a token already checked to be valid UTF-8.
    private func string(_ token: ScannedToken, _ element: LineProtocolElement) -> String {
        let raw = UnsafeRawBufferPointer(rebasing: bytes[token.range])
        guard token.hasBackslash else { return String(decoding: raw, as: UTF8.self) }
        return element.unescapedString(raw)
    }
}
