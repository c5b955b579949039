/// Why a reading was rejected. The raw value is the stable label used in metrics (`rejects{reason=...}`).
public enum RejectReason: String, Sendable, CaseIterable {
    case lineTooLong = "line_too_long"
    case tooManyTags = "too_many_tags"
    case tooManyFields = "too_many_fields"
    case invalidMeasurement = "invalid_measurement"
    case invalidTag = "invalid_tag"
    case invalidField = "invalid_field"
    case invalidFieldValue = "invalid_field_value"
    case invalidTimestamp = "invalid_timestamp"
    case invalidUTF8 = "invalid_utf8"
    case invalidJSON = "invalid_json"
    case missingDevice = "missing_device"
    case topicMismatch = "topic_mismatch"
    case invalidPayload = "invalid_payload"
}

/// A rejected reading: the reason, a human-readable detail, and where it was found.
/// `line` is 1-based; `column` is the 1-based byte position within that line (for JSON: within the document).
public struct PointParseError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: RejectReason
    public var detail: String
    public var line: Int
    public var column: Int

    public init(_ reason: RejectReason, _ detail: String, line: Int = 1, column: Int) {
        self.reason = reason
        self.detail = detail
        self.line = line
        self.column = column
    }

    public var description: String { "line \(line) column \(column): \(detail)" }
}
