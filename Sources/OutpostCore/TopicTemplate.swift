/// Plain MQTT values: the topic names the device and field, the payload is just the value.
///
/// `sensors/{device}/{field}` matches `sensors/gh-7/temperature` with payload `21.5`. Placeholders other than
/// `{device}`, `{field}` and `{measurement}` become tags (`site/{site}/{device}/{field}`); `+`-style literal
/// levels must match exactly. Without `{measurement}`, the measurement is the template's first literal level.
public struct TopicTemplate: Hashable, Sendable, CustomStringConvertible {
    enum Level: Hashable, Sendable {
        case literal(String)
        case device
        case field
        case measurement
        case tag(String)
    }

    let levels: [Level]
    public let description: String
    public var deviceTag: String = "device"
    public var numberTyping: JSONReadingMapping.NumberTyping = .float
    public var integerFields: Set<String> = ["seq"]
    let defaultMeasurement: String

    public struct InvalidTemplate: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    public init(_ template: String) throws(InvalidTemplate) {
        description = template
        var levels: [Level] = []
        for part in template.split(separator: "/", omittingEmptySubsequences: false) {
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                let name = String(part.dropFirst().dropLast())
                switch name {
                case "device": levels.append(.device)
                case "field": levels.append(.field)
                case "measurement": levels.append(.measurement)
                default: levels.append(.tag(name))
                }
            } else if part.contains("{") || part.contains("}") || part.contains("+") || part.contains("#") {
                throw InvalidTemplate(description: "topic template level '\(part)' must be a literal or a whole {placeholder}")
            } else {
                levels.append(.literal(String(part)))
            }
        }
        guard levels.contains(.device) else { throw InvalidTemplate(description: "topic template '\(template)' has no {device}") }
        guard levels.contains(.field) else { throw InvalidTemplate(description: "topic template '\(template)' has no {field}") }
        self.levels = levels
        var firstLiteral = "mqtt"
        for level in levels {
            if case .literal(let text) = level, !text.isEmpty {
                firstLiteral = text
                break
            }
        }
        defaultMeasurement = firstLiteral
    }

    /// The MQTT subscription filter for this template: placeholders become `+`.
    public var subscriptionFilter: String {
        levels.map { level in
            if case .literal(let text) = level { return text }
            return "+"
        }.joined(separator: "/")
    }

    /// Whether `topic` has this template's shape.
    public func matches(_ topic: String) -> Bool {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == levels.count else { return false }
        for (level, part) in zip(levels, parts) {
            switch level {
            case .literal(let text): if part != text { return false }
            default: if part.isEmpty { return false }
            }
        }
        return true
    }

    /// The point for one message. Payload: a number (`21.5`, `-3`, `1e3`), `true`/`false`, or a
    /// double-quoted string; surrounding whitespace is ignored.
    public func point(topic: String, payload: UnsafeRawBufferPointer, receivedAtNanoseconds: Int64?) -> Result<Point, PointParseError> {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == levels.count else {
            return .failure(PointParseError(.topicMismatch, "topic '\(topic)' does not match '\(description)'", column: 1))
        }
        var device = ""
        var field = ""
        var measurement = defaultMeasurement
        var tags: [Tag] = []
        for (level, part) in zip(levels, parts) {
            let text = String(part)
            switch level {
            case .literal(let literal):
                guard literal == text else {
                    return .failure(PointParseError(.topicMismatch, "topic '\(topic)' does not match '\(description)'", column: 1))
                }
            case .device: device = text
            case .field: field = text
            case .measurement: measurement = text
            case .tag(let name): tags.append(Tag(name, text))
            }
        }
        guard !device.isEmpty else { return .failure(PointParseError(.missingDevice, "topic '\(topic)' names no device", column: 1)) }
        guard !field.isEmpty, !measurement.isEmpty else {
            return .failure(PointParseError(.invalidField, "topic '\(topic)' names no field", column: 1))
        }
        tags.append(Tag(deviceTag, device))
        guard let value = fieldValue(payload, field: field) else {
            return .failure(PointParseError(.invalidPayload, "payload is not a number, boolean or quoted string", column: 1))
        }
        return .success(Point(measurement: measurement, tags: tags, fields: [Field(field, value)], timestampNanoseconds: receivedAtNanoseconds))
    }

    func fieldValue(_ payload: UnsafeRawBufferPointer, field: String) -> FieldValue? {
        var start = 0
        var end = payload.count
        while start < end, payload[start] == 0x20 || payload[start] == 0x09 || payload[start] == 0x0A || payload[start] == 0x0D { start += 1 }
        while end > start, payload[end - 1] == 0x20 || payload[end - 1] == 0x09 || payload[end - 1] == 0x0A || payload[end - 1] == 0x0D { end -= 1 }
        guard start < end, end - start <= 1024 else { return nil }
        guard let text = String(validating: UnsafeRawBufferPointer(rebasing: payload[start..<end]), as: UTF8.self) else { return nil }
        switch text {
        case "true", "TRUE", "True": return .bool(true)
        case "false", "FALSE", "False": return .bool(false)
        default: break
        }
        if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") {
            return .string(String(text.dropFirst().dropLast()))
        }
        // JSON number grammar only: rejects "inf", "nan", hex and the like that Double(String) accepts.
        let number: JSONNumber
        do {
            guard case .number(let parsed) = try JSONParser().parse(Array(text.utf8)) else { return nil }
            number = parsed
        } catch {
            return nil
        }
        if integerFields.contains(field) || (numberTyping == .inferred && number.isIntegerLiteral) {
            if let exact = number.int64 { return .int(exact) }
            if let exact = number.uint64 { return .uint(exact) }
            if integerFields.contains(field) { return nil }
        }
        return .float(number.double)
    }
}
