// The one scanner behind every line-protocol read: the gateway's allocation-free validation and the
// Point-building parse walk the same code, so they cannot disagree about what a valid line is.
//
// The grammar and the error recovery follow InfluxData's reference decoder (influxdata/line-protocol v2,
// package `lineprotocol`):
//
//     entry       = measurement ("," tag)* " "+ field ("," field)* (" "+ timestamp)? " "* line-end
//     tag         = tag-key "=" tag-value
//     field       = field-key "=" (float | integer "i" | unsigned "u" | boolean | '"' string '"')
//     line-end    = "\n" | "\r\n" | a lone "\r" at the end of input | end of input
//
// Blank lines, lines of spaces and comment lines (`#` after optional spaces) carry no entry. A string
// field may hold raw newlines, so an entry can span several physical lines. After a syntax error the
// scanner gives up on the entry and resumes after the next newline *from where it stopped reading* -
// inside a string that spans lines, that is a newline of the string - exactly as the reference does, so
// both split a damaged buffer into the same entries.

/// A name token or string content as it stands in the buffer, still escaped.
struct ScannedToken {
    var start: Int
    var end: Int
    /// Whether the token holds a backslash, i.e. whether unescaping could change it.
    var hasBackslash: Bool

    var range: Range<Int> { start..<end }
}

/// A field value, checked and converted; strings stay as their raw (escaped) content.
enum ScannedFieldValue {
    case float(Double)
    case int(Int64)
    case uint(UInt64)
    case bool(Bool)
    case string(ScannedToken)
}

/// Receives the parts of an entry as the scanner proves them valid, in line order. The scanner is generic
/// over its visitor so each use is specialised: validation records positions, parsing builds a Point.
/// A visitor is told nothing more once the entry has failed, and its work is discarded when it fails.
protocol LineProtocolEntryVisitor {
    mutating func visitMeasurement(_ name: ScannedToken)
    mutating func visitTag(key: ScannedToken, value: ScannedToken)
    mutating func visitField(key: ScannedToken, value: ScannedFieldValue)
    /// `position` is one past the last byte of the field set.
    mutating func visitFieldSetEnd(_ position: Int)
    mutating func visitTimestamp(nanoseconds: Int64)
}

/// Why an entry was refused and where (a byte index into the scanned buffer).
struct ScanFailure: Error {
    var problem: LineProtocolProblem
    var position: Int
}

/// One entry as the scanner delimited it.
struct ScannedEntry {
    /// First byte of the entry.
    var start: Int
    /// One past the entry's last meaningful byte: its timestamp or field set when valid, the byte before
    /// the line ending when not.
    var end: Int
    /// Where the next entry may begin: just past the line ending.
    var resume: Int
    /// Newline bytes from `start` to `resume`: raw newlines in strings plus the terminating one.
    var newlines: Int
    /// Whether the entry ended at a newline (rather than at the end of the buffer).
    var terminatedByNewline: Bool
    var failure: ScanFailure?
}

/// Where the next entry starts, once blank and comment lines are skipped.
struct EntryStart {
    /// First byte of the entry.
    var position: Int
    /// First byte of the physical line the entry starts on (before any leading spaces).
    var lineStart: Int
    /// Newline bytes skipped to get there.
    var newlinesSkipped: Int
}

struct LineProtocolScanner {
    let bytes: UnsafeRawPointer
    let count: Int
    let nanosecondsPerUnit: Int64
    let limits: PointLimits

    @inline(__always)
    func byte(_ index: Int) -> UInt8 {
        bytes.load(fromByteOffset: index, as: UInt8.self)
    }

    private typealias Byte = LineProtocolByte

    // MARK: Between entries

    /// Skips blank lines, lines of spaces and comment lines from `position`, which must be the start of a
    /// physical line. Returns nil when nothing but such lines remain.
    ///
    /// A comment holding a control character is not a comment to the reference: the entry then starts at
    /// the beginning of that line, and fails as a measurement name.
    func skipToEntry(from position: Int) -> EntryStart? {
        var index = position
        var newlines = 0
        while true {
            let lineStart = index
            while index < count && byte(index) == Byte.space { index += 1 }
            guard index < count else { return nil }
            switch byte(index) {
            case Byte.hash:
                var end = index + 1
                while end < count {
                    let character = byte(end)
                    if Byte.isNonPrintable(character) { break }
                    end += 1
                }
                if end == count { return nil }
                if byte(end) == Byte.newline {
                    index = end + 1
                    newlines += 1
                } else if byte(end) == Byte.carriageReturn && end + 1 == count {
                    return nil
                } else if byte(end) == Byte.carriageReturn && byte(end + 1) == Byte.newline {
                    index = end + 2
                    newlines += 1
                } else {
                    return EntryStart(position: lineStart, lineStart: lineStart, newlinesSkipped: newlines)
                }
            case Byte.newline:
                index += 1
                newlines += 1
            case Byte.carriageReturn:
                if index + 1 == count { return nil }
                if byte(index + 1) == Byte.newline {
                    index += 2
                    newlines += 1
                } else {
                    return EntryStart(position: index, lineStart: lineStart, newlinesSkipped: newlines)
                }
            default:
                return EntryStart(position: index, lineStart: lineStart, newlinesSkipped: newlines)
            }
        }
    }

    // MARK: One entry

    /// Scans the entry starting at `start`, telling `visitor` about its parts while it is valid.
    func scanEntry<Visitor: LineProtocolEntryVisitor>(at start: Int, visitor: inout Visitor) -> ScannedEntry {
        var position = start
        var newlines = 0
        // A failure that leaves the entry's extent intact (a duplicate tag, a limit): scanning goes on to
        // find where the entry ends, checking syntax only, as the reference does when skipping an entry.
        var deferredFailure: ScanFailure?

        // Measurement.
        let measurement = scanName(from: position, element: .measurement)
        position = measurement.token.end
        if measurement.hasNonASCII && !isValidUTF8(bytes, from: measurement.token.start, to: position) {
            return abandon(start, deferredFailure, .invalidUTF8(.measurement), at: measurement.token.start, from: position, newlines)
        }
        if position == measurement.token.start {
            let problem: LineProtocolProblem = position == count ? .missingMeasurement : .invalidMeasurementStart(found: byte(position))
            return abandon(start, deferredFailure, problem, at: position, from: position, newlines)
        }
        if byte(measurement.token.start) == Byte.hash {
            // Only reachable for a comment the skipper refused (it holds a control character).
            return abandon(start, deferredFailure, .invalidCommentCharacter, at: measurement.token.start, from: position, newlines)
        }
        visitor.visitMeasurement(measurement.token)

        // Tags.
        if position < count && byte(position) == Byte.comma {
            position += 1
            if let problem = missingTagKeyAfterComma(at: position) {
                return abandon(start, deferredFailure, problem, at: position, from: position, newlines)
            }
        }
        var tagCount = 0
        let tagSectionStart = position  // where the first tag key starts, when there are tags
        var previousTagKey: Range<Int>? = nil
        var tagKeysAscending = true
        var afterTagValue = false
        tagLoop: while true {
            if position < count && byte(position) == Byte.space {
                while position < count && byte(position) == Byte.space { position += 1 }
                break tagLoop
            }
            let key = scanName(from: position, element: .tagKey)
            position = key.token.end
            if key.hasNonASCII && !isValidUTF8(bytes, from: key.token.start, to: position) {
                return abandon(start, deferredFailure, .invalidUTF8(.tagKey), at: key.token.start, from: position, newlines)
            }
            let found: UInt8? = position < count ? byte(position) : nil
            if key.token.start == position || found != Byte.equals {
                let problem: LineProtocolProblem
                if key.token.start != position {
                    problem = .missingTagEquals(key: key.token.range, found: found)
                } else if found == Byte.equals {
                    problem = .emptyTagKey
                } else {
                    problem = .missingFieldSet(found: found, afterTag: afterTagValue)
                }
                return abandon(start, deferredFailure, problem, at: key.token.start, from: position, newlines)
            }
            position += 1
            let value = scanName(from: position, element: .tagValue)
            position = value.token.end
            if value.hasNonASCII && !isValidUTF8(bytes, from: value.token.start, to: position) {
                return abandon(start, deferredFailure, .invalidUTF8(.tagValue), at: value.token.start, from: position, newlines)
            }
            if value.token.start == position {
                return abandon(start, deferredFailure, .missingTagValue(key: key.token.range), at: position, from: position, newlines)
            }
            tagCount += 1
            if deferredFailure == nil {
                if tagCount > limits.tagsPerPointMax {
                    deferredFailure = ScanFailure(problem: .tooManyTags(limit: limits.tagsPerPointMax), position: key.token.start)
                } else {
                    if let previous = previousTagKey, !rawBytesPrecede(previous, key.token.range) {
                        tagKeysAscending = false
                    }
                    previousTagKey = key.token.range
                    visitor.visitTag(key: key.token, value: value.token)
                }
            }
            afterTagValue = true
            if position == count { break tagLoop }
            if byte(position) == Byte.comma {
                position += 1
                if let problem = missingTagKeyAfterComma(at: position) {
                    return abandon(start, deferredFailure, problem, at: position, from: position, newlines)
                }
            }
        }
        if deferredFailure == nil && !tagKeysAscending,
           let duplicate = firstDuplicateTagKey(from: tagSectionStart, tagCount: tagCount) {
            deferredFailure = ScanFailure(problem: .duplicateTagKey(key: duplicate), position: duplicate.lowerBound)
        }

        // Fields.
        var fieldCount = 0
        fieldLoop: while true {
            let key = scanName(from: position, element: .fieldKey)
            position = key.token.end
            if key.hasNonASCII && !isValidUTF8(bytes, from: key.token.start, to: position) {
                return abandon(start, deferredFailure, .invalidUTF8(.fieldKey), at: key.token.start, from: position, newlines)
            }
            if key.token.start == position {
                let found: UInt8? = position < count ? byte(position) : nil
                return abandon(start, deferredFailure, .missingFieldKey(found: found), at: position, from: position, newlines)
            }
            guard position < count, byte(position) == Byte.equals else {
                let found: UInt8? = position < count ? byte(position) : nil
                return abandon(start, deferredFailure, .missingFieldEquals(key: key.token.range, found: found), at: position, from: position, newlines)
            }
            position += 1
            guard position < count else {
                return abandon(start, deferredFailure, .missingFieldValue(key: key.token.range), at: position, from: position, newlines)
            }

            // The value's syntax decides its kind; numbers are checked once the separator after them is seen,
            // as the reference does.
            let valueStart = position
            let pending: PendingFieldValue
            switch byte(position) {
            case Byte.quote:
                let content = scanStringContent(from: position + 1)
                newlines += content.newlines
                position = content.token.end
                if content.hasNonASCII && !isValidUTF8(bytes, from: content.token.start, to: position) {
                    return abandon(start, deferredFailure, .invalidUTF8(.stringFieldValue), at: content.token.start, from: position, newlines)
                }
                guard position < count else {
                    return abandon(start, deferredFailure, .missingClosingQuote(key: key.token.range), at: valueStart, from: position, newlines)
                }
                position += 1
                pending = .string(content.token)
            case UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "f"), UInt8(ascii: "F"):
                position = scanValueToken(from: position)
                pending = .unquoted(.bool, valueStart..<position)
            case Byte.minus, Byte.dot, Byte.zero...Byte.nine:
                position = scanValueToken(from: position)
                switch byte(position - 1) {
                case UInt8(ascii: "i"): pending = .unquoted(.int, valueStart..<position)
                case UInt8(ascii: "u"): pending = .unquoted(.uint, valueStart..<position)
                default: pending = .unquoted(.float, valueStart..<position)
                }
            case Byte.space, Byte.comma:
                return abandon(start, deferredFailure, .missingFieldValue(key: key.token.range), at: position, from: position, newlines)
            default:
                let end = scanValueToken(from: position)
                return abandon(start, deferredFailure, .unrecognizedFieldValue(key: key.token.range, value: valueStart..<end), at: valueStart, from: end, newlines)
            }
            fieldCount += 1
            if deferredFailure == nil && fieldCount > limits.fieldsPerPointMax {
                deferredFailure = ScanFailure(problem: .tooManyFields(limit: limits.fieldsPerPointMax), position: key.token.start)
            }

            // The separator after the value: another field, the timestamp, or the end of the entry.
            var fieldSetContinues = false
            var lineEnding: (resume: Int, newline: Bool)? = nil
            let fieldSetEnd = position
            if position == count {
                lineEnding = (count, false)
            } else {
                let separator = byte(position)
                if separator == Byte.comma {
                    position += 1
                    fieldSetContinues = true
                } else if separator == Byte.space || separator == Byte.newline || separator == Byte.carriageReturn {
                    while position < count && byte(position) == Byte.space { position += 1 }
                    lineEnding = consumeLineEnding(at: position)
                } else {
                    return abandon(start, deferredFailure, .unexpectedAfterField(key: key.token.range, found: separator), at: position, from: position, newlines)
                }
            }

            if deferredFailure == nil {
                let value: ScannedFieldValue
                switch pending {
                case .string(let content):
                    value = .string(content)
                case .unquoted(let kind, let text):
                    switch checkedValue(kind, from: text.lowerBound, to: text.upperBound, key: key.token.range) {
                    case .success(let checked):
                        value = checked
                    case .failure(let failure):
                        // The value is refused after its separator was read: when that was the line ending the
                        // entry is over; otherwise the rest of the line is abandoned.
                        if let ending = lineEnding {
                            return finish(start, end: fieldSetEnd, ending: ending, newlines: newlines, failure: failure)
                        }
                        return abandon(start, nil, failure.problem, at: failure.position, from: position, newlines)
                    }
                }
                visitor.visitField(key: key.token, value: value)
            }
            if fieldSetContinues { continue fieldLoop }
            if deferredFailure == nil { visitor.visitFieldSetEnd(fieldSetEnd) }
            if let ending = lineEnding {
                return finish(start, end: fieldSetEnd, ending: ending, newlines: newlines, failure: deferredFailure)
            }
            break fieldLoop
        }

        // Timestamp: what follows the field set when it is not the line ending.
        let timestampStart = position
        while position < count {
            let character = byte(position)
            if (character >= Byte.zero && character <= Byte.nine) || character == Byte.minus {
                position += 1
            } else {
                break
            }
        }
        let timestampEnd = position
        if position < count {
            let next = byte(position)
            let isWhitespace = next == Byte.space || next == Byte.newline || next == Byte.carriageReturn
            if !isWhitespace || timestampStart == timestampEnd {
                let problem: LineProtocolProblem = isWhitespace
                    ? .unexpectedAfterTimestamp(timestampStart..<timestampEnd)
                    : .invalidTimestamp(timestampStart..<lineContentEnd(from: position))
                return abandon(start, deferredFailure, problem, at: timestampStart, from: position, newlines)
            }
            while position < count && byte(position) == Byte.space { position += 1 }
        }
        guard let ending = consumeLineEnding(at: position) else {
            let extraEnd = lineContentEnd(from: position)
            return abandon(start, deferredFailure, .unexpectedAfterTimestamp(position..<extraEnd), at: position, from: extraEnd, newlines)
        }
        if deferredFailure == nil {
            switch LineProtocolNumberReader(bytes: bytes).int64(from: timestampStart, to: timestampEnd) {
            case .value(let units):
                let (nanoseconds, overflow) = units.multipliedReportingOverflow(by: nanosecondsPerUnit)
                if overflow {
                    let failure = ScanFailure(problem: .timestampOutOfRange(timestampStart..<timestampEnd), position: timestampStart)
                    return finish(start, end: timestampEnd, ending: ending, newlines: newlines, failure: failure)
                }
                visitor.visitTimestamp(nanoseconds: nanoseconds)
            case .malformed:
                let failure = ScanFailure(problem: .invalidTimestamp(timestampStart..<timestampEnd), position: timestampStart)
                return finish(start, end: timestampEnd, ending: ending, newlines: newlines, failure: failure)
            case .outOfRange:
                let failure = ScanFailure(problem: .timestampOutOfRange(timestampStart..<timestampEnd), position: timestampStart)
                return finish(start, end: timestampEnd, ending: ending, newlines: newlines, failure: failure)
            }
        }
        return finish(start, end: timestampEnd, ending: ending, newlines: newlines, failure: deferredFailure)
    }

    // MARK: Entry endings

    private func finish(_ start: Int, end: Int, ending: (resume: Int, newline: Bool), newlines: Int, failure: ScanFailure?) -> ScannedEntry {
        ScannedEntry(
            start: start, end: end, resume: ending.resume, newlines: newlines + (ending.newline ? 1 : 0),
            terminatedByNewline: ending.newline, failure: failure)
    }

    /// Gives up on an entry after a syntax error: skips to just past the next newline from `resumeFrom`
    /// (where reading stopped), as the reference decoder does. A failure found earlier in the entry wins.
    private func abandon(
        _ start: Int, _ earlier: ScanFailure?, _ problem: LineProtocolProblem, at position: Int, from resumeFrom: Int,
        _ newlines: Int
    ) -> ScannedEntry {
        let failure = earlier ?? ScanFailure(problem: problem, position: position)
        var index = resumeFrom
        while index < count && byte(index) != Byte.newline { index += 1 }
        var end = index
        if end > start && byte(end - 1) == Byte.carriageReturn { end -= 1 }
        if index < count {
            return ScannedEntry(start: start, end: end, resume: index + 1, newlines: newlines + 1, terminatedByNewline: true, failure: failure)
        }
        return ScannedEntry(start: start, end: end, resume: count, newlines: newlines, terminatedByNewline: false, failure: failure)
    }

    /// A line ending at `position`: `\n`, `\r\n`, a lone `\r` at the end of input, or the end of input.
    @inline(__always)
    private func consumeLineEnding(at position: Int) -> (resume: Int, newline: Bool)? {
        if position == count { return (count, false) }
        switch byte(position) {
        case Byte.newline:
            return (position + 1, true)
        case Byte.carriageReturn:
            if position + 1 == count { return (count, false) }
            if byte(position + 1) == Byte.newline { return (position + 2, true) }
            return nil
        default:
            return nil
        }
    }

    /// The end of the current line's content from `position`: the next `\r` or `\n`, or the end.
    private func lineContentEnd(from position: Int) -> Int {
        var index = position
        while index < count {
            let character = byte(index)
            if character == Byte.newline || character == Byte.carriageReturn { break }
            index += 1
        }
        return index
    }

    /// After a comma that starts a tag there must be a tag key, not white space or the end.
    @inline(__always)
    private func missingTagKeyAfterComma(at position: Int) -> LineProtocolProblem? {
        guard position < count else { return .missingTagKeyAfterComma(found: nil) }
        let next = byte(position)
        if next == Byte.space || next == Byte.newline || next == Byte.carriageReturn {
            return .missingTagKeyAfterComma(found: next)
        }
        return nil
    }

    // MARK: Tokens

    /// Scans a measurement, tag key, tag value or field key. It ends at the first byte that cannot be in
    /// it unescaped: `,` and space, control characters and DEL, and `=` except in a measurement. A backslash
    /// before one of the position's escapable bytes takes that byte into the name; any other backslash is
    /// an ordinary byte.
    @inline(__always)
    private func scanName(from start: Int, element: LineProtocolElement) -> (token: ScannedToken, hasNonASCII: Bool) {
        let stopsAtEquals = element != .measurement
        var index = start
        var highBits: UInt8 = 0
        var hasBackslash = false
        while index < count {
            let character = byte(index)
            if character == Byte.backslash {
                hasBackslash = true
                if index + 1 < count {
                    let next = byte(index + 1)
                    if next == Byte.space || next == Byte.comma || (stopsAtEquals && next == Byte.equals) {
                        index += 2
                        continue
                    }
                }
                index += 1
                continue
            }
            if character <= Byte.space || character == Byte.comma || character == Byte.delete
                || (stopsAtEquals && character == Byte.equals) {
                break
            }
            highBits |= character
            index += 1
        }
        return (ScannedToken(start: start, end: index, hasBackslash: hasBackslash), highBits & 0x80 != 0)
    }

    /// Scans string content after its opening quote up to the closing quote (or the end of the buffer).
    /// Anything but an unescaped `"` belongs to the string, raw newlines included.
    @inline(__always)
    private func scanStringContent(from start: Int) -> (token: ScannedToken, hasNonASCII: Bool, newlines: Int) {
        var index = start
        var highBits: UInt8 = 0
        var hasBackslash = false
        var newlines = 0
        while index < count {
            let character = byte(index)
            if character == Byte.quote { break }
            if character == Byte.backslash {
                hasBackslash = true
                if index + 1 < count, LineProtocolElement.stringFieldValue.unescaped(byte(index + 1)) != nil {
                    index += 2
                    continue
                }
                index += 1
                continue
            }
            if character == Byte.newline { newlines += 1 }
            highBits |= character
            index += 1
        }
        return (ScannedToken(start: start, end: index, hasBackslash: hasBackslash), highBits & 0x80 != 0, newlines)
    }

    /// Scans an unquoted field value: everything up to `,`, space, `\r`, `\n` or the end.
    @inline(__always)
    private func scanValueToken(from start: Int) -> Int {
        var index = start
        while index < count {
            let character = byte(index)
            if character == Byte.comma || character == Byte.space || character == Byte.newline
                || character == Byte.carriageReturn {
                break
            }
            index += 1
        }
        return index
    }

    /// Converts an unquoted field value of the kind its syntax announced (an `i` or `u` suffix is not part
    /// of the number).
    @inline(__always)
    private func checkedValue(_ kind: LineProtocolValueKind, from start: Int, to end: Int, key: Range<Int>)
        -> Result<ScannedFieldValue, ScanFailure>
    {
        let reader = LineProtocolNumberReader(bytes: bytes)
        let outcome: LineProtocolNumber<ScannedFieldValue>
        switch kind {
        case .float:
            switch reader.float(from: start, to: end) {
            case .value(let value): outcome = .value(.float(value))
            case .malformed: outcome = .malformed
            case .outOfRange: outcome = .outOfRange
            }
        case .int:
            switch reader.int64(from: start, to: end - 1) {
            case .value(let value): outcome = .value(.int(value))
            case .malformed: outcome = .malformed
            case .outOfRange: outcome = .outOfRange
            }
        case .uint:
            switch reader.uint64(from: start, to: end - 1) {
            case .value(let value): outcome = .value(.uint(value))
            case .malformed: outcome = .malformed
            case .outOfRange: outcome = .outOfRange
            }
        case .bool:
            if let value = reader.bool(from: start, to: end) { outcome = .value(.bool(value)) } else { outcome = .malformed }
        case .string:
            outcome = .malformed  // quoted strings never come here
        }
        switch outcome {
        case .value(let value):
            return .success(value)
        case .malformed:
            return .failure(ScanFailure(problem: .malformedFieldValue(key: key, kind: kind, value: start..<end), position: start))
        case .outOfRange:
            return .failure(ScanFailure(problem: .fieldValueOutOfRange(key: key, kind: kind, value: start..<end), position: start))
        }
    }

    // MARK: Duplicate tag keys

    /// Whether raw token `a` sorts strictly before raw token `b`, byte-wise. Raw tokens are compared
    /// without unescaping: in names every separator byte must be escaped and nothing else is changed by
    /// unescaping, so each unescaped name has exactly one raw spelling, and raw order is a valid strict
    /// order for telling keys apart.
    @inline(__always)
    private func rawBytesPrecede(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
        let common = min(a.count, b.count)
        var offset = 0
        while offset < common {
            let left = byte(a.lowerBound + offset)
            let right = byte(b.lowerBound + offset)
            if left != right { return left < right }
            offset += 1
        }
        return a.count < b.count
    }

    private func rawBytesEqual(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
        guard a.count == b.count else { return false }
        var offset = 0
        while offset < a.count {
            if byte(a.lowerBound + offset) != byte(b.lowerBound + offset) { return false }
            offset += 1
        }
        return true
    }

    /// The first tag key that repeats an earlier one, for a tag section that was not in ascending order.
    /// The section is already known to be well formed, so its keys are found again by a plain re-scan.
    /// Quadratic, but bounded by `tagsPerPointMax` and only run for unsorted tag sets.
    private func firstDuplicateTagKey(from sectionStart: Int, tagCount: Int) -> Range<Int>? {
        withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: tagCount) { keys in
            var position = sectionStart
            for index in 0..<tagCount {
                let key = scanName(from: position, element: .tagKey).token
                keys[index] = key.range
                let value = scanName(from: key.end + 1, element: .tagValue).token
                position = value.end + 1  // past the comma
                for earlier in 0..<index where rawBytesEqual(keys[earlier], key.range) {
                    return key.range
                }
            }
            return nil
        }
    }
}

/// The kind a field value's syntax announces.
enum LineProtocolValueKind {
    case float, int, uint, bool, string
}

/// A field value whose syntax has been read but whose number (if any) is not checked yet.
private enum PendingFieldValue {
    case string(ScannedToken)
    case unquoted(LineProtocolValueKind, Range<Int>)
}
