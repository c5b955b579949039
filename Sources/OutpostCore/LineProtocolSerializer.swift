// Writing a Point as canonical line protocol, byte for byte as InfluxData's reference encoder writes it, so
// a record's value reads the same in every tool. Canonical means: tags in the Point's (sorted) order,
// fields in order, each name escaped for its position, floats in Go's shortest form, timestamp in
// nanoseconds. Reading what is written gives back the same Point.

/// A point that line protocol cannot express.
public struct LineProtocolSerializationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The same labels the parser rejects with, so metrics read alike.
    public var reason: RejectReason
    public var detail: String

    public init(_ reason: RejectReason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { detail }
}

public struct LineProtocolSerializer: Sendable {
    public init() {}

    /// Appends the point's line (no trailing newline) to `output`. On error `output` is left as it was.
    public func append(_ point: Point, to output: inout [UInt8]) throws(LineProtocolSerializationError) {
        let startCount = output.count
        do {
            try write(point, to: &output)
        } catch {
            output.removeSubrange(startCount...)
            throw error
        }
    }

    /// The point's line, without a trailing newline.
    public func serialize(_ point: Point) throws(LineProtocolSerializationError) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(128)
        try write(point, to: &output)
        return String(decoding: output, as: UTF8.self)
    }

    private func write(_ point: Point, to output: inout [UInt8]) throws(LineProtocolSerializationError) {
        try checkName(point.measurement, .measurement, reason: .invalidMeasurement)
        if point.measurement.utf8.first == LineProtocolByte.hash {
            // Written as is, it would read back as a comment line.
            throw LineProtocolSerializationError(.invalidMeasurement, "measurement \(quoted(point.measurement)) starts with '#'")
        }
        guard !point.fields.isEmpty else {
            throw LineProtocolSerializationError(.invalidField, "point \(quoted(point.measurement)) has no fields")
        }
        LineProtocolElement.measurement.appendEscaped(point.measurement, to: &output)

        var previousKey: String? = nil
        for tag in point.tags {
            try checkName(tag.key, .tagKey, reason: .invalidTag)
            try checkName(tag.value, .tagValue, reason: .invalidTag)
            if let previousKey, !previousKey.utf8.lexicographicallyPrecedes(tag.key.utf8) {
                // Point keeps tags sorted, so this is a repeated key.
                throw LineProtocolSerializationError(.invalidTag, "duplicate tag key \(quoted(tag.key))")
            }
            previousKey = tag.key
            output.append(LineProtocolByte.comma)
            LineProtocolElement.tagKey.appendEscaped(tag.key, to: &output)
            output.append(LineProtocolByte.equals)
            LineProtocolElement.tagValue.appendEscaped(tag.value, to: &output)
        }

        var separator = LineProtocolByte.space
        for field in point.fields {
            try checkName(field.key, .fieldKey, reason: .invalidField)
            output.append(separator)
            separator = LineProtocolByte.comma
            LineProtocolElement.fieldKey.appendEscaped(field.key, to: &output)
            output.append(LineProtocolByte.equals)
            switch field.value {
            case .float(let value):
                guard value.isFinite else {
                    throw LineProtocolSerializationError(.invalidFieldValue, "field \(quoted(field.key)) is \(value), which line protocol cannot hold")
                }
                LineProtocolNumberWriter.appendGoFloat(value, to: &output)
            case .int(let value):
                LineProtocolNumberWriter.appendDecimal(value, to: &output)
                output.append(UInt8(ascii: "i"))
            case .uint(let value):
                LineProtocolNumberWriter.appendDecimal(value, to: &output)
                output.append(UInt8(ascii: "u"))
            case .bool(let value):
                output.append(contentsOf: value ? "true".utf8 : "false".utf8)
            case .string(let value):
                output.append(LineProtocolByte.quote)
                LineProtocolElement.stringFieldValue.appendEscaped(value, to: &output)
                output.append(LineProtocolByte.quote)
            }
        }

        if let timestamp = point.timestampNanoseconds {
            output.append(LineProtocolByte.space)
            LineProtocolNumberWriter.appendDecimal(timestamp, to: &output)
        }
    }

    /// The reference encoder's rule for names and tag values: not empty, no control characters or DEL,
    /// and no trailing backslash, which would escape the separator written after it.
    private func checkName(_ name: String, _ element: LineProtocolElement, reason: RejectReason) throws(LineProtocolSerializationError) {
        guard let last = name.utf8.last else {
            throw LineProtocolSerializationError(reason, "empty \(element.name)")
        }
        if last == LineProtocolByte.backslash {
            throw LineProtocolSerializationError(reason, "\(element.name) \(quoted(name)) ends with a backslash")
        }
        if name.utf8.contains(where: LineProtocolByte.isNonPrintable) {
            throw LineProtocolSerializationError(reason, "\(element.name) \(quoted(name)) holds a control character")
        }
    }

    private func quoted(_ text: String) -> String {
        Array(text.utf8).withUnsafeBytes { LineProtocolQuoting.quoted($0, 0..<$0.count) }
    }
}
