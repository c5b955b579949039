/// The JSON shape `outpost parse` prints for a point or a rejected line, one object per line:
/// `{"line":1,"measurement":"m","tags":{"k":"v"},"fields":{"f":{"float":1.5}},"time":1}` and
/// `{"line":2,"column":5,"error":"reason"}`. The typed-field objects mirror InfluxData's corpus format.
public enum PointJSON {
    public static func encode(_ point: Point, line: Int) -> String {
        var out = "{\"line\":\(line),\"measurement\":" + JSONWriter.quoted(point.measurement) + ",\"tags\":{"
        for (index, tag) in point.tags.enumerated() {
            if index > 0 { out += "," }
            out += JSONWriter.quoted(tag.key) + ":" + JSONWriter.quoted(tag.value)
        }
        out += "},\"fields\":{"
        for (index, field) in point.fields.enumerated() {
            if index > 0 { out += "," }
            out += JSONWriter.quoted(field.key) + ":" + encode(field.value)
        }
        out += "}"
        if let time = point.timestampNanoseconds { out += ",\"time\":\(time)" }
        out += "}"
        return out
    }

    public static func encode(_ value: FieldValue) -> String {
        switch value {
        case .float(let number): "{\"float\":" + JSONWriter.number(number) + "}"
        case .int(let number): "{\"int\":\(number)}"
        case .uint(let number): "{\"uint\":\(number)}"
        case .string(let text): "{\"string\":" + JSONWriter.quoted(text) + "}"
        case .bool(let flag): "{\"bool\":\(flag)}"
        }
    }

    public static func encode(_ error: PointParseError) -> String {
        "{\"line\":\(error.line),\"column\":\(error.column),\"reason\":\"\(error.reason.rawValue)\",\"error\":"
            + JSONWriter.quoted(error.detail) + "}"
    }
}
