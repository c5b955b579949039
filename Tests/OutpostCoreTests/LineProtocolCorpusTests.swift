import Foundation
import Testing
import OutpostCore

/// Agreement with InfluxData's reference implementation (influxdata/line-protocol v2), case by case, on the
/// corpus kept beside the checkout (../shared/testdata/line-protocol/corpus.json; see its README).
@Suite struct LineProtocolCorpusTests {
    /// Cases where we judged the reference wrong and deliberately differ, with the reason. Each entry is
    /// expected to disagree; it is reported, never silently skipped. Empty: we agree with every case.
    static let knownReferenceDisagreements: [String: String] = [:]

    @Test func decodeCasesAgreeWithReference() throws {
        guard let corpus = try LineProtocolCorpus.load() else { return }
        var agreeing = 0
        var disagreements: [String] = []
        for key in corpus.decode.keys.sorted() {
            guard let testCase = corpus.decode[key] else { continue }
            let verdict = try Self.decodeVerdict(testCase)
            if verdict == nil { agreeing += 1 }
            switch (verdict, Self.knownReferenceDisagreements[key]) {
            case (nil, nil): break
            case (nil, .some(let reason)):
                disagreements.append("\(key): listed as a reference disagreement (\(reason)) but now agrees")
            case (.some(let verdict), nil):
                disagreements.append("\(key): input \(Self.describe(testCase.input.text.bytes)) precision \(testCase.input.precision)\n\(verdict)")
            case (.some, .some(let reason)):
                print("line-protocol corpus: \(key) differs from the reference on purpose: \(reason)")
            }
        }
        print("line-protocol corpus: \(agreeing)/\(corpus.decode.count) decode cases agree")
        for disagreement in disagreements.prefix(50) { Issue.record(Comment(rawValue: disagreement)) }
        #expect(disagreements.isEmpty, "\(disagreements.count) decode cases disagree with the reference")
    }

    @Test func encodeCasesAgreeWithReference() throws {
        guard let corpus = try LineProtocolCorpus.load() else { return }
        let serializer = LineProtocolSerializer()
        let parser = LineProtocolParser()
        var agreeing = 0
        var disagreements: [String] = []
        for key in corpus.encode.keys.sorted() {
            guard let testCase = corpus.encode[key] else { continue }
            let point = testCase.input.point.point
            let outcome: Result<String, LineProtocolSerializationError> = Result { () throws(LineProtocolSerializationError) in
                try serializer.serialize(point)
            }
            var problems: [String] = []
            switch (outcome, testCase.output.result) {
            case (.success(let text), .some(let expected)):
                if text != expected { problems.append("wrote \(text.debugDescription), reference wrote \(expected.debugDescription)") }
            case (.success(let text), nil):
                problems.append("wrote \(text.debugDescription), reference refused: \(testCase.output.error ?? "")")
            case (.failure(let error), .some(let expected)):
                problems.append("refused (\(error.detail)), reference wrote \(expected.debugDescription)")
            case (.failure, nil):
                break
            }
            // As the reference's own test does: what is written reads back as the same point.
            if case .success(let text) = outcome {
                let reread = parser.parse(text)
                if reread != [.point(point, line: 1)] { problems.append("wrote \(text.debugDescription), which reads back as \(reread)") }
            }
            if problems.isEmpty {
                agreeing += 1
            } else {
                disagreements.append("\(key): point \(point)\n" + problems.joined(separator: "\n"))
            }
        }
        print("line-protocol corpus: \(agreeing)/\(corpus.encode.count) encode cases agree")
        for disagreement in disagreements.prefix(50) { Issue.record(Comment(rawValue: disagreement)) }
        #expect(disagreements.isEmpty, "\(disagreements.count) encode cases disagree with the reference")
    }

    /// Nil when our parser agrees with the case; otherwise both outcomes, for the failure message.
    static func decodeVerdict(_ testCase: LineProtocolCorpus.DecodeCase) throws -> String? {
        guard let precision = TimestampPrecision(parsing: testCase.input.precision) else {
            return "unknown precision \(testCase.input.precision)"
        }
        let parser = LineProtocolParser(precision: precision, limits: .unbounded)
        let outcomes = parser.parse(testCase.input.text.bytes, defaultTimeNanoseconds: testCase.input.defaultTime)
        let rejections = outcomes.compactMap { outcome -> PointParseError? in
            if case .rejected(let error) = outcome { return error }
            return nil
        }
        let points = outcomes.compactMap { outcome -> Point? in
            if case .point(let point, _) = outcome { return point }
            return nil
        }
        if let referenceError = testCase.output.error {
            if !rejections.isEmpty { return nil }
            return "reference: error \(referenceError.debugDescription)\nours: \(points.count) points, no error: \(points)"
        }
        let expected = (testCase.output.result ?? []).map(\.point)
        if rejections.isEmpty && points == expected { return nil }
        return "reference: \(expected)\nours: \(outcomes)"
    }

    static func describe(_ bytes: [UInt8]) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text.debugDescription }
        return "bytes " + bytes.map { String($0, radix: 16) }.joined(separator: " ")
    }
}

extension PointLimits {
    /// The reference has no limits; the corpus is compared without ours.
    static let unbounded = PointLimits(lineBytesMax: .max, tagsPerPointMax: .max, fieldsPerPointMax: .max)
}

/// The corpus file, decoded.
struct LineProtocolCorpus: Decodable, Sendable {
    var decode: [String: DecodeCase]
    var encode: [String: EncodeCase]

    /// The package root is two directories above this file; the corpus sits beside the checkout.
    static let path = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("../shared/testdata/line-protocol/corpus.json").standardizedFileURL.path

    private static let loaded: Result<LineProtocolCorpus, any Error>? = {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return Result { try JSONDecoder().decode(LineProtocolCorpus.self, from: Data(contentsOf: URL(fileURLWithPath: path))) }
    }()

    /// The corpus, or nil after recording a test failure saying where it was looked for.
    static func load() throws -> LineProtocolCorpus? {
        guard let loaded else {
            Issue.record("line-protocol corpus not found at \(path)")
            return nil
        }
        return try loaded.get()
    }

    struct DecodeCase: Decodable, Sendable {
        var input: DecodeInput
        var output: DecodeOutput
    }

    struct DecodeInput: Decodable, Sendable {
        var text: Text
        var precision: String
        var defaultTime: Int64
    }

    struct DecodeOutput: Decodable, Sendable {
        var result: [CorpusPoint]?
        var error: String?
    }

    struct EncodeCase: Decodable, Sendable {
        var input: EncodeInput
        var output: EncodeOutput
    }

    struct EncodeInput: Decodable, Sendable {
        var point: CorpusPoint
        var precision: String
    }

    struct EncodeOutput: Decodable, Sendable {
        var result: String?
        var error: String?
    }

    /// Input text: a JSON string, or `{"binary": base64}` for bytes that are not UTF-8.
    struct Text: Decodable, Sendable {
        var bytes: [UInt8]

        private struct Binary: Decodable {
            var binary: String
        }

        init(from decoder: any Decoder) throws {
            if let text = try? decoder.singleValueContainer().decode(String.self) {
                bytes = Array(text.utf8)
                return
            }
            let binary = try Binary(from: decoder)
            guard let data = Data(base64Encoded: binary.binary) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad base64"))
            }
            bytes = Array(data)
        }
    }

    struct CorpusPoint: Decodable, Sendable {
        var name: String
        var tags: [CorpusTag]
        var fields: [CorpusField]
        var time: Int64

        var point: Point {
            Point(
                measurement: name, tags: tags.map { Tag($0.key, $0.value) },
                fields: fields.map { Field($0.key, $0.value.fieldValue) }, timestampNanoseconds: time)
        }
    }

    struct CorpusTag: Decodable, Sendable {
        var key: String
        var value: String
    }

    struct CorpusField: Decodable, Sendable {
        var key: String
        var value: CorpusValue
    }

    struct CorpusValue: Decodable, Sendable {
        var fieldValue: FieldValue

        private enum Kind: String, CodingKey {
            case float, int, uint, string, bool
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Kind.self)
            if let value = try container.decodeIfPresent(Double.self, forKey: .float) {
                fieldValue = .float(value)
            } else if let value = try container.decodeIfPresent(Int64.self, forKey: .int) {
                fieldValue = .int(value)
            } else if let value = try container.decodeIfPresent(UInt64.self, forKey: .uint) {
                fieldValue = .uint(value)
            } else if let value = try container.decodeIfPresent(String.self, forKey: .string) {
                fieldValue = .string(value)
            } else if let value = try container.decodeIfPresent(Bool.self, forKey: .bool) {
                fieldValue = .bool(value)
            } else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "no field value"))
            }
        }
    }
}
