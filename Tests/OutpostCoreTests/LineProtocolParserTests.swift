import Testing
import OutpostCore

/// The parser rule by rule: escaping per position, value types, timestamps and precision, comments and
/// line endings, limits, error positions and recovery, and the validate/parsePoint/nextEntry paths.
@Suite struct LineProtocolParserTests {
    let parser = LineProtocolParser()

    func point(_ line: String, precision: TimestampPrecision = .nanoseconds) throws -> Point {
        try LineProtocolParser(precision: precision).parsePoint(line)
    }

    func rejection(_ line: String, parser: LineProtocolParser = LineProtocolParser()) -> PointParseError? {
        do {
            _ = try parser.parsePoint(line)
            return nil
        } catch {
            return error
        }
    }

    // MARK: The shape of a line

    @Test func measurementTagsFieldsAndTimestamp() throws {
        let parsed = try point("weather,site=north,device=ws-1 temperature=21.5,count=3i,ok=true,note=\"fine\" 1700000000000000000")
        #expect(parsed == Point(
            measurement: "weather", tags: [Tag("site", "north"), Tag("device", "ws-1")],
            fields: [
                Field("temperature", .float(21.5)), Field("count", .int(3)), Field("ok", .bool(true)),
                Field("note", .string("fine")),
            ],
            timestampNanoseconds: 1_700_000_000_000_000_000))
        #expect(parsed.tags.map(\.key) == ["device", "site"], "tags are kept sorted")
    }

    @Test func spacesAroundSectionsAndAtTheEnd() throws {
        #expect(try point("  cpu   value=1   2  ") == Point(measurement: "cpu", fields: [Field("value", .float(1))], timestampNanoseconds: 2))
        #expect(rejection("cpu\tvalue=1")?.reason == .invalidMeasurement, "a tab is not a separator")
        #expect(rejection("cpu value=1\t2")?.reason == .invalidFieldValue, "a tab belongs to the value")
    }

    @Test(arguments: [
        ("cpu", RejectReason.invalidField),
        ("cpu ", .invalidField),
        ("cpu,host=a", .invalidField),
        ("cpu,host=a ", .invalidField),
        (",host=a f=1", .invalidMeasurement),
        (" ,f=1", .invalidMeasurement),
        ("cpu, f=1", .invalidTag),
        ("cpu,=a f=1", .invalidTag),
        ("cpu,host f=1", .invalidTag),
        ("cpu,host= f=1", .invalidTag),
        ("cpu,host=a,f=1", .invalidField),
        ("cpu,a=b=c f=1", .invalidTag),
        ("cpu f", .invalidField),
        ("cpu f=", .invalidField),
        ("cpu f=1,", .invalidField),
        ("cpu f=1, g=2", .invalidField),
        ("cpu =1", .invalidField),
        ("cpu f= 1", .invalidField),
        ("cpu f=\"open", .invalidField),
        ("cpu f=\"a\"b", .invalidField),
        ("cpu f=1 2 3", .invalidTimestamp),
    ])
    func malformedLines(line: String, reason: RejectReason) {
        #expect(rejection(line)?.reason == reason, "\(line.debugDescription)")
    }

    // MARK: Escaping, position by position

    @Test func measurementEscapes() throws {
        #expect(try point(#"cpu\ load\,total f=1"#).measurement == "cpu load,total")
        #expect(try point(#"cpu=load f=1"#).measurement == "cpu=load", "= needs no escape in a measurement")
        #expect(try point(#"cpu\=load f=1"#).measurement == #"cpu\=load"#, "nor can it be escaped there")
        #expect(try point(#"a\\b f=1"#).measurement == #"a\\b"#, "a backslash before a non-separator stays")
        #expect(try point(#"a\\\ b f=1"#).measurement == #"a\\ b"#)
        #expect(try point(##""cpu"\#x f=1"##).measurement == ##""cpu"\#x"##, "quotes and # are ordinary")
        #expect(try point(##"\#cpu f=1"##).measurement == ##"\#cpu"##)
    }

    @Test func tagKeyAndValueEscapes() throws {
        let parsed = try point(#"m,k\ 1\,2\=3=v\ 1\,2\=3,x\y=a\b f=1"#)
        #expect(parsed.tag("k 1,2=3") == "v 1,2=3")
        #expect(parsed.tag(#"x\y"#) == #"a\b"#)
        #expect(try point(#"m,"k"="v" f=1"#).tag("\"k\"") == "\"v\"")
    }

    @Test func fieldKeyEscapes() throws {
        let parsed = try point(#"m f\ 1\,2\=3=1,\"q\"=2,a\b=3"#)
        #expect(parsed.fields.map(\.key) == ["f 1,2=3", #"\"q\""#, #"a\b"#])
    }

    @Test func stringFieldEscapes() throws {
        let parsed = try point(#"m s="a\"b\\c\nd\te\rf\xg, h=i""#)
        #expect(parsed.field("s") == .string("a\"b\\c\nd\te\rf\\xg, h=i"))
        #expect(try point(#"m s="""#).field("s") == .string(""))
        #expect(try point(#"m s="\\""#).field("s") == .string("\\"))
        #expect(try point("m s=\"tab\there\"").field("s") == .string("tab\there"), "raw control characters are allowed in strings")
    }

    // MARK: Field values

    @Test(arguments: [
        ("1", 1.0), ("-1.5", -1.5), (".5", 0.5), ("5.", 5.0), ("1e3", 1000.0), ("1E-3", 0.001), ("-0", -0.0),
        ("1_000.5", 1000.5), ("0x1p3", 8.0), ("0x1.8p1", 3.0), ("1e-400", 0.0),
        ("1.7976931348623157e308", 1.7976931348623157e308), ("4.9e-324", Double.leastNonzeroMagnitude),
        ("123456789012345678901234567890", 1.2345678901234568e29), ("0.1", 0.1), ("21.53", 21.53),
    ])
    func floatSpellings(text: String, value: Double) throws {
        #expect(try point("m f=\(text)").field("f") == .float(value))
    }

    @Test(arguments: ["1e400", "-1e400", "0x1p1024", "-inf", "-Infinity", "1.2.3", "1e", "1e+", "1_", "1__0", "0x1", "-", ".", "1f", "-nan", "1.5x"])
    func malformedFloats(text: String) {
        #expect(rejection("m f=\(text)")?.reason == .invalidFieldValue, "\(text)")
    }

    @Test func integers() throws {
        #expect(try point("m f=0i,g=-9223372036854775808i,h=9223372036854775807i,j=007i").fields.map(\.value)
            == [.int(0), .int(.min), .int(.max), .int(7)])
        #expect(try point("m f=0u,g=18446744073709551615u").fields.map(\.value) == [.uint(0), .uint(.max)])
        for bad in ["9223372036854775808i", "-9223372036854775809i", "1.5i", "-i", "1_0i", "18446744073709551616u", "-1u", "1iu"] {
            #expect(rejection("m f=\(bad)")?.reason == .invalidFieldValue, "\(bad)")
        }
    }

    @Test func booleanSpellings() throws {
        for text in ["t", "T", "true", "True", "TRUE"] { #expect(try point("m b=\(text)").field("b") == .bool(true)) }
        for text in ["f", "F", "false", "False", "FALSE"] { #expect(try point("m b=\(text)").field("b") == .bool(false)) }
        for text in ["tRUE", "truee", "fa", "yes", "on"] {
            #expect(rejection("m b=\(text)")?.reason == .invalidFieldValue, "\(text)")
        }
    }

    // MARK: Timestamps and precision

    @Test func timestampsScaleWithPrecision() throws {
        #expect(try point("m f=1 -5").timestampNanoseconds == -5)
        #expect(try point("m f=1 1", precision: .microseconds).timestampNanoseconds == 1_000)
        #expect(try point("m f=1 1", precision: .milliseconds).timestampNanoseconds == 1_000_000)
        #expect(try point("m f=1 -2", precision: .seconds).timestampNanoseconds == -2_000_000_000)
        #expect(try point("m f=1 9223372036", precision: .seconds).timestampNanoseconds == 9_223_372_036_000_000_000)
        #expect(try point("m f=1 -9223372036854775808").timestampNanoseconds == .min)
        #expect(try point("m f=1").timestampNanoseconds == nil)
    }

    @Test(arguments: [
        ("m f=1 9223372037", TimestampPrecision.seconds), ("m f=1 -9223372037", .seconds),
        ("m f=1 9223372036855", .milliseconds), ("m f=1 9223372036854776", .microseconds),
        ("m f=1 9223372036854775808", .nanoseconds), ("m f=1 1-2", .nanoseconds), ("m f=1 --1", .nanoseconds),
        ("m f=1 -", .nanoseconds), ("m f=1 1.5", .nanoseconds), ("m f=1 12x", .nanoseconds), ("m f=1 1 x", .nanoseconds),
    ])
    func badTimestamps(line: String, precision: TimestampPrecision) {
        #expect(rejection(line, parser: LineProtocolParser(precision: precision))?.reason == .invalidTimestamp, "\(line)")
    }

    @Test func defaultTimeIsTruncatedToThePrecision() throws {
        let milliseconds = LineProtocolParser(precision: .milliseconds)
        #expect(try milliseconds.parsePoint("m f=1", defaultTimeNanoseconds: 1_234_567_891).timestampNanoseconds == 1_234_000_000)
        #expect(try milliseconds.parsePoint("m f=1", defaultTimeNanoseconds: -1).timestampNanoseconds == -1_000_000)
        #expect(try milliseconds.parsePoint("m f=1 5", defaultTimeNanoseconds: 1).timestampNanoseconds == 5_000_000)
        #expect(try parser.parsePoint("m f=1", defaultTimeNanoseconds: 42).timestampNanoseconds == 42)
    }

    // MARK: Lines, comments, line endings

    @Test func commentsBlankLinesAndCRLF() {
        let outcomes = parser.parse("# header\n\n   \r\ncpu f=1\r\n  # indented comment\r\ncpu f=2 3\r\n\r\ncpu f=4\r")
        #expect(outcomes == [
            .point(Point(measurement: "cpu", fields: [Field("f", .float(1))]), line: 4),
            .point(Point(measurement: "cpu", fields: [Field("f", .float(2))], timestampNanoseconds: 3), line: 6),
            .point(Point(measurement: "cpu", fields: [Field("f", .float(4))]), line: 8),
        ])
        #expect(parser.parse("# only a comment").isEmpty)
        #expect(parser.parse("").isEmpty)
        #expect(parser.parse("# comment with invalid UTF-8 is fine: \u{FFFD}").isEmpty)
    }

    @Test func commentWithControlCharacterIsRejected() {
        let outcomes = parser.parse("# a\tb\ncpu f=1")
        #expect(outcomes.count == 2)
        guard case .rejected(let error) = outcomes.first else {
            Issue.record("expected a rejection, got \(outcomes)")
            return
        }
        #expect(error.reason == .invalidMeasurement)
        #expect([error.line, error.column] == [1, 1])
        #expect(outcomes.last == .point(Point(measurement: "cpu", fields: [Field("f", .float(1))]), line: 2))
    }

    @Test func loneCarriageReturnIsNotALineEnding() {
        let outcomes = parser.parse("cpu f=1\rcpu f=2\ncpu f=3")
        #expect(outcomes.count == 2)
        if case .rejected(let error) = outcomes.first { #expect(error.reason == .invalidTimestamp) } else { Issue.record("\(outcomes)") }
        #expect(outcomes.last == .point(Point(measurement: "cpu", fields: [Field("f", .float(3))]), line: 2))
    }

    @Test func stringsMaySpanLines() {
        let outcomes = parser.parse("a s=\"one\ntwo\" 1\nb f=1")
        #expect(outcomes == [
            .point(Point(measurement: "a", fields: [Field("s", .string("one\ntwo"))], timestampNanoseconds: 1), line: 1),
            .point(Point(measurement: "b", fields: [Field("f", .float(1))]), line: 3),
        ])
    }

    // MARK: Recovery and error positions

    @Test func goodLinesAroundBadLinesStillParse() {
        let outcomes = parser.parse("a f=1\nbad line\nb f=2i\nc,t f=3\nd f=4")
        #expect(outcomes.count == 5)
        let points = outcomes.compactMap { outcome -> String? in
            if case .point(let point, let line) = outcome { return "\(point.measurement)@\(line)" }
            return nil
        }
        #expect(points == ["a@1", "b@3", "d@5"])
        let rejectedLines = outcomes.compactMap { outcome -> Int? in
            if case .rejected(let error) = outcome { return error.line }
            return nil
        }
        #expect(rejectedLines == [2, 4])
    }

    @Test func recoveryResumesAfterTheNextNewlineFromWhereReadingStopped() {
        // The bad value is found after its comma; the reference then skips to the next newline, which here
        // is inside the following string, so the string's second half is read as a (bad) line of its own.
        let outcomes = parser.parse("a f=1x,s=\"one\ntwo\"\nb f=1")
        #expect(outcomes.count == 3)
        #expect(outcomes.last == .point(Point(measurement: "b", fields: [Field("f", .float(1))]), line: 3))
        // An unterminated string swallows the rest of the input.
        #expect(parser.parse("a s=\"open\nb f=1\nc f=2").count == 1)
        // A string with invalid UTF-8 is read to its closing quote before it is refused.
        let invalid: [UInt8] = Array("a s=\"\u{1}".utf8) + [0xFF] + Array("\nb f=1\" 2\nc f=3".utf8)
        let afterInvalid = parser.parse(invalid)
        #expect(afterInvalid.count == 2)
        #expect(afterInvalid.last == .point(Point(measurement: "c", fields: [Field("f", .float(3))]), line: 3))
    }

    @Test(arguments: [
        ("cpu,host=a value=1\ncpu,region value=1", RejectReason.invalidTag, 2, 5),
        ("cpu f=1 12x", .invalidTimestamp, 1, 9),
        ("cpu f=abc", .invalidFieldValue, 1, 7),
        ("cpu f=1.2.3,g=1", .invalidFieldValue, 1, 7),
        ("cpu f=\"open", .invalidField, 1, 7),
        ("cpu f=1,g=\"x\ny\"z", .invalidField, 2, 3),
        ("cpu,a=b,a=c f=1", .invalidTag, 1, 9),
        ("cpu f=1 2 x", .invalidTimestamp, 1, 11),
        ("   cpu f=x", .invalidFieldValue, 1, 10),
        ("a f=1\n\n  b,t=\u{1} f=1", .invalidTag, 3, 7),
    ])
    func errorPositions(text: String, reason: RejectReason, line: Int, column: Int) {
        let errors = parser.parse(text).compactMap { outcome -> PointParseError? in
            if case .rejected(let error) = outcome { return error }
            return nil
        }
        #expect(errors.count == 1, "\(text.debugDescription)")
        #expect(errors.first?.reason == reason, "\(text.debugDescription): \(errors)")
        #expect(errors.first.map { [$0.line, $0.column] } == [line, column], "\(text.debugDescription): \(errors)")
    }

    // MARK: Tags

    @Test func duplicateTagKeysAreRejectedInAnyOrder() {
        #expect(rejection("m,a=1,a=2 f=1")?.reason == .invalidTag)
        #expect(rejection("m,b=1,a=1,c=1,a=2 f=1")?.reason == .invalidTag)
        #expect(rejection(#"m,a\ b=1,c=1,a\ b=2 f=1"#)?.reason == .invalidTag)
        #expect(rejection("m,b=1,a=1,c=1 f=1") == nil, "unsorted but distinct keys are fine")
        #expect(rejection("m f=1,f=2") == nil, "the reference allows repeated field keys")
    }

    // MARK: UTF-8

    @Test func invalidUTF8IsRejectedInEveryPosition() {
        let bad: [UInt8] = [0xC3, 0x28]
        let shapes: [([UInt8]) -> [UInt8]] = [
            { Array("m".utf8) + $0 + Array(" f=1".utf8) },
            { Array("m,".utf8) + $0 + Array("=v f=1".utf8) },
            { Array("m,k=".utf8) + $0 + Array(" f=1".utf8) },
            { Array("m ".utf8) + $0 + Array("=1".utf8) },
            { Array("m f=\"".utf8) + $0 + Array("\"".utf8) },
        ]
        for (index, shape) in shapes.enumerated() {
            let line = shape(bad)
            #expect(throws: PointParseError.self, "shape \(index)") { try parser.validate(line: line) }
            let outcome = parser.parse(line)
            if case .rejected(let error) = outcome.first { #expect(error.reason == .invalidUTF8, "shape \(index)") } else {
                Issue.record("shape \(index): \(outcome)")
            }
            #expect(throws: Never.self) { try parser.validate(line: shape(Array("é日😀".utf8))) }
        }
        for overlongOrSurrogate in [[0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] as [[UInt8]] {
            #expect(throws: PointParseError.self) { try parser.validate(line: Array("m s=\"".utf8) + overlongOrSurrogate + [0x22]) }
        }
    }

    // MARK: Limits

    @Test func limitsRejectWithTheirReason() throws {
        let small = LineProtocolParser(limits: PointLimits(lineBytesMax: 20, tagsPerPointMax: 2, fieldsPerPointMax: 2))
        #expect(throws: Never.self) { try small.parsePoint("m,a=1,b=2 f=1,g=2") }
        #expect(rejection("m,a=1,b=2,c=3 f=1", parser: small)?.reason == .tooManyTags)
        #expect(rejection("m f=1,g=2,h=3", parser: small)?.reason == .tooManyFields)
        #expect(rejection("m f=1,g=2 12345678901", parser: small)?.reason == .lineTooLong)
        #expect(rejection("m f=1,g=2 1234567890", parser: small) == nil, "exactly at the limit")
        #expect(rejection("m,a=1,b=2,c=3 f=1", parser: small).map { [$0.line, $0.column] } == [1, 11])

        let outcomes = small.parse("m,a=1,b=2,c=3 f=1\nm f=1,g=2,h=3\nm f=1 12345678901234567\nok f=1")
        let reasons = outcomes.map { outcome -> RejectReason? in
            if case .rejected(let error) = outcome { return error.reason }
            return nil
        }
        #expect(reasons == [.tooManyTags, .tooManyFields, .lineTooLong, nil])
    }

    // MARK: The hot path

    @Test func validateReportsTheLayout() throws {
        let line = Array("greenhouse,device=gh-0007,site=north temperature=21.53,co2=415i 1732300000123000000".utf8)
        let layout = try parser.validate(line: line, deviceTagKey: Array("device".utf8))
        #expect(String(decoding: line[layout.measurement], as: UTF8.self) == "greenhouse")
        #expect(layout.tagCount == 2)
        #expect(layout.fieldCount == 2)
        #expect(layout.deviceTagValue.map { String(decoding: line[$0], as: UTF8.self) } == "gh-0007")
        #expect(String(decoding: line[..<layout.fieldSetEnd], as: UTF8.self).hasSuffix("co2=415i"))
        #expect(layout.timestampNanoseconds == 1_732_300_000_123_000_000)
        #expect(layout.hasTimestamp)

        let untimed = try parser.validate(line: Array("m,site=x f=1".utf8), deviceTagKey: Array("device".utf8))
        #expect(untimed.deviceTagValue == nil)
        #expect(!untimed.hasTimestamp)
        #expect(untimed.fieldSetEnd == 12)
    }

    @Test func deviceTagKeysAndValuesAreComparedUnescaped() throws {
        let line = Array(#"m,dev\ id=a\ b\,c,device=x f=1"#.utf8)
        let layout = try parser.validate(line: line, deviceTagKey: Array("dev id".utf8))
        let raw = try #require(layout.deviceTagValue)
        let key = line.withUnsafeBytes { LineProtocolElement.tagValue.unescaped(UnsafeRawBufferPointer(rebasing: $0[raw])) }
        #expect(String(decoding: key, as: UTF8.self) == "a b,c")
        #expect(try parser.validate(line: line, deviceTagKey: Array("dev".utf8)).deviceTagValue == nil)
    }

    @Test func validateTakesOneEntryOnly() throws {
        #expect(throws: Never.self) { try parser.validate(line: Array("m f=1\n".utf8)) }
        #expect(throws: Never.self) { try parser.validate(line: Array("m f=1\r\n# trailing comment\n".utf8)) }
        #expect(throws: Never.self) { try parser.validate(line: Array("m s=\"multi\nline\"".utf8)) }
        let second = #expect(throws: PointParseError.self) { try parser.validate(line: Array("m f=1\nm f=2".utf8)) }
        #expect(second?.line == 2)
        let blank = #expect(throws: PointParseError.self) { try parser.validate(line: Array("  # nothing".utf8)) }
        #expect(blank?.reason == .invalidMeasurement)
        #expect(throws: PointParseError.self) { try parser.validate(line: []) }
    }

    @Test func nextEntryWalksABufferOfManyLines() {
        let text = Array("# fleet\na,device=1 f=1 1\n\nbad\nb,device=2 s=\"x\ny\" 2\r\nc,device=3 f=3".utf8)
        var entries: [LineProtocolEntry] = []
        text.withUnsafeBytes { buffer in
            var cursor = LineProtocolCursor()
            while let entry = parser.nextEntry(in: buffer, cursor: &cursor, deviceTagKey: Array("device".utf8)) {
                entries.append(entry)
            }
            #expect(cursor.position == buffer.count)
        }
        let texts = entries.map { String(decoding: text[$0.bytes], as: UTF8.self) }
        #expect(texts == ["a,device=1 f=1 1", "bad", "b,device=2 s=\"x\ny\" 2", "c,device=3 f=3"])
        #expect(entries.map(\.line) == [2, 4, 5, 7])
        #expect(entries.map(\.terminatedByNewline) == [true, true, true, false])
        let devices = entries.map { entry -> String? in
            guard case .success(let layout) = entry.layout, let range = layout.deviceTagValue else { return nil }
            return String(decoding: text[range], as: UTF8.self)
        }
        #expect(devices == ["1", nil, "2", "3"])
    }

    @Test func validateAndParsePointAgreeOnTheseTables() {
        let lines = [
            "m f=1", "m,t=1 f=1i 5", "m f=abc", "m", "m,t=1,t=2 f=1", "m f=\"x", "# c", "", "m f=1\nm f=2", "m f=1 x",
        ]
        for line in lines {
            let bytes = Array(line.utf8)
            let validated = (try? parser.validate(line: bytes)) != nil
            let parsed = (try? parser.parsePoint(line)) != nil
            #expect(validated == parsed, "\(line.debugDescription)")
        }
    }
}

/// The in-place decoder: texts read back unescaped, lookups by unescaped key, numbers converted.
@Suite struct LineProtocolDecodingTests {
    let parser = LineProtocolParser(precision: .milliseconds)

    @Test func aDecodedPointReadsItsEscapedNamesAndTypedValues() throws {
        let line = Array(#"we\ ather,site\,id=north\ 1,device=gh-7 temp\=c=21.5,n=3i,u=4u,ok=true,note="say \"hi\"\n" 1732300000123"#.utf8)
        try line.withUnsafeBytes { buffer in
            let point = try parser.decodePoint(line: buffer)
            #expect(point.measurement.string(in: buffer) == "we ather")
            #expect(point.tags.map { $0.key.string(in: buffer) } == ["site,id", "device"])
            #expect(point.tagValue(Array("site,id".utf8), in: buffer)?.string(in: buffer) == "north 1")
            #expect(point.tagValue(Array("device".utf8), in: buffer)?.string(in: buffer) == "gh-7")
            #expect(point.tagValue(Array("site".utf8), in: buffer) == nil)
            #expect(point.fieldValue(Array("temp=c".utf8), in: buffer) == .float(21.5))
            #expect(point.fieldValue(Array("n".utf8), in: buffer) == .int(3))
            #expect(point.fieldValue(Array("u".utf8), in: buffer) == .uint(4))
            #expect(point.fieldValue(Array("ok".utf8), in: buffer) == .bool(true))
            guard case .string(let note)? = point.fieldValue(Array("note".utf8), in: buffer) else {
                Issue.record("no string field")
                return
            }
            #expect(note.string(in: buffer) == "say \"hi\"\n")
            #expect(note.equals(Array("say \"hi\"\n".utf8), in: buffer))
            #expect(point.timestampNanoseconds == 1_732_300_000_123_000_000)
            #expect(point.point(in: buffer) == (try parser.parsePoint(String(decoding: line, as: UTF8.self))))
        }
    }

    @Test func decodeEachReportsGoodAndBadEntriesWithTheirLines() {
        let text = Array("# header\nm f=1\nm f=\nm,t=a g=2i 5\n".utf8)
        var seen: [String] = []
        text.withUnsafeBytes { buffer in
            parser.decodeEach(buffer) { outcome, line in
                switch outcome {
                case .success(let point): seen.append("\(line): \(point.measurement.string(in: buffer)) \(point.fields.count) \(point.timestampNanoseconds ?? -1)")
                case .failure(let error): seen.append("\(line): error at \(error.line):\(error.column)")
                }
            }
        }
        #expect(seen == ["2: m 1 -1", "3: error at 3:5", "4: m 1 5000000"])
    }
}
