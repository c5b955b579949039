import Foundation
import Testing
import OutpostCore

/// Properties over many generated inputs, from one seed each (set `OUTPOST_TEST_SEED` to replay or vary):
/// written points read back unchanged and canonically, and no input whatever crashes or splits the three
/// read paths apart.
@Suite struct LineProtocolPropertyTests {
    static let seed: UInt64 = ProcessInfo.processInfo.environment["OUTPOST_TEST_SEED"].flatMap { UInt64($0) } ?? 0x0075_7470_6F73_74

    let parser = LineProtocolParser()
    let serializer = LineProtocolSerializer()

    // MARK: Round trip

    @Test func writtenPointsReadBackUnchangedAndCanonically() throws {
        var random = SplitMix64(seed: Self.seed)
        for iteration in 0..<4_000 {
            let point = random.point()
            if let problem = roundTripProblem(point) {
                Issue.record("seed \(Self.seed) iteration \(iteration): \(problem)\npoint: \(point)")
                return  // one replayable failure is enough
            }
        }
    }

    /// What is wrong with writing `point` and reading it back, if anything.
    func roundTripProblem(_ point: Point) -> String? {
        let text: String
        do {
            text = try serializer.serialize(point)
        } catch {
            return "refused a writable point: \(error)"
        }
        let reread = parser.parse(text)
        guard reread == [.point(point, line: 1)], case .point(let parsed, _)? = reread.first else {
            return "\(text.debugDescription) read back as \(reread)"
        }
        guard let again = try? serializer.serialize(parsed), again == text else {
            return "\(text.debugDescription) is not a fixed point"
        }
        guard let layout = try? parser.validate(line: Array(text.utf8)) else {
            return "\(text.debugDescription) parses but does not validate"
        }
        if layout.tagCount != point.tags.count || layout.fieldCount != point.fields.count
            || layout.timestampNanoseconds != point.timestampNanoseconds {
            return "\(text.debugDescription) validates with layout \(layout)"
        }
        return nil
    }

    @Test func serializingAnyParsedPointIsAFixedPoint() {
        var random = SplitMix64(seed: Self.seed ^ 0x5EED)
        for (index, input) in fuzzInputs(&random).enumerated() {
            for outcome in parser.parse(input) {
                guard case .point(let point, _) = outcome else { continue }
                let context = "seed \(Self.seed) input \(index) \(LineProtocolCorpusTests.describe(input))"
                let first: String
                do {
                    first = try serializer.serialize(point)
                } catch {
                    Issue.record("cannot write a parsed point \(point): \(error); \(context)")
                    continue
                }
                guard let again = try? parser.parsePoint(first), again == point,
                      let second = try? serializer.serialize(again), second == first
                else {
                    Issue.record("\(first.debugDescription) does not read back as \(point) and write again alike; \(context)")
                    return  // one replayable failure is enough
                }
            }
        }
    }

    /// Many points in one text, their names drawn from a few look-alikes (escaped or not, equal length or
    /// not) so the same names recur at the same positions from line to line: the parse of the whole text
    /// reads back every point, as it reads each one alone.
    @Test func manyLinesWithRecurringNamesReadBackAsEachLineAlone() throws {
        var random = SplitMix64(seed: Self.seed ^ 0x11AE)
        let names = ["a", "b", "a b", "a,b", "a=b", "a\\b", "ab", "日", "device", "devicf", "north", "south"]
        for round in 0..<200 {
            let points = (0..<(1 + random.below(40))).map { _ in
                let tagCount = random.chance(8) ? 16 + random.below(4) : random.below(4)
                var tags: [OutpostCore.Tag] = []
                for index in 0..<tagCount {
                    tags.append(OutpostCore.Tag(index >= 4 ? "k\(index)" : names[random.below(names.count)], names[random.below(names.count)]))
                }
                var seen = Set<String>()
                tags = tags.filter { seen.insert($0.key).inserted }
                let fields = (0...random.below(18)).map { _ in Field(names[random.below(names.count)], random.fieldValue()) }
                return Point(measurement: names[random.below(names.count)], tags: tags, fields: fields, timestampNanoseconds: Int64(random.below(1_000)))
            }
            let text = try points.map { try serializer.serialize($0) }.joined(separator: "\n")
            // (Compared without line numbers: a string field may hold raw newlines.)
            let parsed = parser.parse(text).map { outcome -> Point? in
                if case .point(let point, _) = outcome { point } else { nil }
            }
            #expect(parsed == points, "seed \(Self.seed) round \(round)")
            if parsed != points { return }
        }
    }

    // MARK: Garbage

    @Test func garbageNeverCrashesAndTheReadPathsAgree() {
        var random = SplitMix64(seed: Self.seed ^ 0xF022)
        for (index, input) in fuzzInputs(&random).enumerated() {
            let context = "seed \(Self.seed) input \(index) \(LineProtocolCorpusTests.describe(input))"
            checkReadPathsAgree(on: input, context: context)
        }
    }

    /// parse, decodeEach, nextEntry, validate, parsePoint and decodePoint must split and judge every input alike.
    func checkReadPathsAgree(on input: [UInt8], context: String) {
        let outcomes = parser.parse(input)
        input.withUnsafeBytes { buffer in
            var decoded: [LineOutcome] = []
            parser.decodeEach(buffer) { outcome, line in
                switch outcome {
                case .success(let point): decoded.append(.point(point.point(in: buffer), line: line))
                case .failure(let error): decoded.append(.rejected(error))
                }
            }
            #expect(decoded == outcomes, "decodeEach and parse disagree; \(context)")
            var cursor = LineProtocolCursor()
            var entries: [LineProtocolEntry] = []
            var previousEnd = 0
            while let entry = parser.nextEntry(in: buffer, cursor: &cursor) {
                #expect(entry.bytes.lowerBound >= previousEnd && entry.bytes.upperBound <= buffer.count, "\(context)")
                #expect(cursor.position > entry.bytes.lowerBound, "cursor must move on; \(context)")
                previousEnd = entry.bytes.upperBound
                entries.append(entry)
                if entries.count > buffer.count + 1 {
                    Issue.record("more entries than bytes; \(context)")
                    return
                }
            }
            #expect(entries.count == outcomes.count, "\(context)")
            for (entry, outcome) in zip(entries, outcomes) {
                let parsedPoint: Point?
                switch outcome {
                case .point(let point, let line):
                    parsedPoint = point
                    #expect(line == entry.line, "\(context)")
                case .rejected(let error):
                    parsedPoint = nil
                    #expect(error.line >= entry.line && error.column >= 1, "\(context)")
                }
                let layout = try? entry.layout.get()
                #expect((layout != nil) == (parsedPoint != nil), "nextEntry and parse disagree; \(context)")
                // Each valid entry, taken alone, is valid to both single-line paths and means the same there.
                guard let layout, let parsedPoint else { continue }
                let slice = UnsafeRawBufferPointer(rebasing: buffer[entry.bytes])
                #expect((try? parser.parsePoint(line: slice)) == parsedPoint, "\(context)")
                let alone = try? parser.validate(line: slice)
                #expect(alone?.fieldCount == layout.fieldCount && alone?.timestampNanoseconds == layout.timestampNanoseconds, "\(context)")
            }
            // The whole input as one line: validate and parsePoint accept and refuse alike.
            let validated = Result { () throws(PointParseError) in try parser.validate(line: buffer) }
            let parsed = Result { () throws(PointParseError) in try parser.parsePoint(line: buffer) }
            let decodedAlone = Result { () throws(PointParseError) in try parser.decodePoint(line: buffer).point(in: buffer) }
            #expect(decodedAlone == parsed, "decodePoint and parsePoint disagree; \(context)")
            switch (validated, parsed) {
            case (.success(let layout), .success(let point)):
                #expect(layout.fieldCount == point.fields.count && layout.tagCount == point.tags.count, "\(context)")
            case (.failure(let first), .failure(let second)):
                #expect(first == second, "\(context)")
            default:
                Issue.record("validate \(validated) but parsePoint \(parsed); \(context)")
            }
        }
    }

    /// Random byte strings, and random mutations of corpus inputs (or of a few built-in lines when the
    /// corpus is absent; the corpus test reports that).
    func fuzzInputs(_ random: inout SplitMix64) -> [[UInt8]] {
        var seeds = [
            "cpu,host=a,region=us value=1.5,count=3i,ok=t,msg=\"hi\\\" there\" 1700000000000000000",
            "# comment\n\nm,t=a\\ b f=1u -5\r\nm s=\"two\nlines\"", "m f=0x1p3,g=1_0.5e-3,h=-0i", "a\\,b,c\\=d=e\\ f g\\ h=\"\\\\\"",
        ].map { Array($0.utf8) }
        if let corpus = try? LineProtocolCorpus.loadQuietly() {
            seeds += corpus.decode.keys.sorted().compactMap { corpus.decode[$0]?.input.text.bytes }
        }
        let specials: [[UInt8]] = ["\\", ",", "=", "\"", "\n", "\r", " ", "#", "\t", "i", "u", ".", "-", "e", "\r\n"]
            .map { Array($0.utf8) } + [[0xFF], [0xC3], [0x00], [0x7F]]
        var inputs: [[UInt8]] = []
        for _ in 0..<3_000 {
            var bytes = seeds[random.below(seeds.count)]
            for _ in 0...random.below(4) {
                switch random.below(5) {
                case 0 where !bytes.isEmpty: bytes[random.below(bytes.count)] = UInt8(truncatingIfNeeded: random.next())
                case 1: bytes.removeLast(random.below(bytes.count + 1))
                case 2: bytes.insert(contentsOf: specials[random.below(specials.count)], at: random.below(bytes.count + 1))
                case 3 where !bytes.isEmpty: bytes.remove(at: random.below(bytes.count))
                default: bytes += [0x0A] + seeds[random.below(seeds.count)]  // another line after a newline
                }
            }
            inputs.append(bytes)
        }
        let alphabet = Array("ab =,\\\"\n\r#1i.-tu".utf8) + [0xFF, 0xC3, 0xA9, 0x00]
        for _ in 0..<3_000 {
            let length = random.below(40)
            inputs.append((0..<length).map { _ in
                random.below(8) == 0 ? UInt8(truncatingIfNeeded: random.next()) : alphabet[random.below(alphabet.count)]
            })
        }
        return inputs
    }
}

extension LineProtocolCorpus {
    /// The corpus when present, without recording an issue when it is not.
    static func loadQuietly() throws -> LineProtocolCorpus? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try load()
    }
}

/// SplitMix64: a tiny, well-mixed generator, so one printed seed replays a whole run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// A number in 0..<bound (bound > 0).
    mutating func below(_ bound: Int) -> Int {
        Int(next() % UInt64(bound))
    }

    mutating func chance(_ oneIn: Int) -> Bool {
        below(oneIn) == 0
    }

    // MARK: Points with nasty names and extreme numbers

    static let nameCharacters: [String] = [
        "a", "Z", "0", "_", "-", ".", " ", ",", "=", "\"", "\\", "#", "'", "/", "é", "日", "😀", "\u{FEFF}",
    ]
    static let stringCharacters: [String] = nameCharacters + ["\n", "\r", "\t", "\r\n", "\u{0}", "\u{7F}", "\\n", "\\\""]

    mutating func text(from characters: [String], lengthMax: Int) -> String {
        (0..<below(lengthMax + 1)).map { _ in characters[below(characters.count)] }.joined()
    }

    /// A non-empty name line protocol can carry: no control characters, no trailing backslash.
    mutating func name() -> String {
        var name = text(from: Self.nameCharacters, lengthMax: 8)
        if name.isEmpty || name.hasSuffix("\\") { name += "n" }
        return name
    }

    mutating func float() -> Double {
        switch below(6) {
        case 0:
            let value = Double(bitPattern: next())
            return value.isFinite ? value : 0
        case 1:
            return [0, -0.0, .leastNonzeroMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                    1e21, 1e-5, 0.1, 123_456.7][below(10)]
        case 2: return Double(Int64(bitPattern: next()) % 1_000_000) / 100
        case 3: return Double(Int64(bitPattern: next()))
        default: return Double(below(2_000)) - 1_000 + Double(below(1_000)) / 1_000
        }
    }

    mutating func fieldValue() -> FieldValue {
        switch below(5) {
        case 0: return .float(float())
        case 1: return .int(chance(4) ? [Int64.min, .max, 0, -1][below(4)] : Int64(bitPattern: next()))
        case 2: return .uint(chance(4) ? [UInt64.max, 0][below(2)] : next())
        case 3: return .bool(chance(2))
        default: return .string(text(from: Self.stringCharacters, lengthMax: 12))
        }
    }

    mutating func point() -> Point {
        var measurement = name()
        if measurement.hasPrefix("#") { measurement = "m" + measurement }
        var tagKeys: [String] = []  // unique, in generation order so a seed replays exactly
        for _ in 0..<below(5) {
            let key = name()
            if !tagKeys.contains(key) { tagKeys.append(key) }
        }
        let tags = tagKeys.map { Tag($0, name()) }
        let fields = (0...below(5)).map { _ in Field(name(), fieldValue()) }
        let timestamp: Int64? = switch below(4) {
        case 0: nil
        case 1: [Int64.min, .max, 0, -1][below(4)]
        default: Int64(bitPattern: next())
        }
        return Point(measurement: measurement, tags: tags, fields: fields, timestampNanoseconds: timestamp)
    }
}
