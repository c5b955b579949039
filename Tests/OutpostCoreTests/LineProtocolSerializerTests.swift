import Testing
import OutpostCore

/// Canonical line protocol out of a Point: Go's float format, escaping per position, and refusals.
@Suite struct LineProtocolSerializerTests {
    let serializer = LineProtocolSerializer()

    func line(_ fields: [Field], measurement: String = "m", tags: [OutpostCore.Tag] = [], timestamp: Int64? = nil) throws -> String {
        try serializer.serialize(Point(measurement: measurement, tags: tags, fields: fields, timestampNanoseconds: timestamp))
    }

    @Test(arguments: [
        (1.0, "1"), (-0.64, "-0.64"), (12.123, "12.123"), (6_632_243, "6.632243e+06"), (123_456, "123456"),
        (1_234_567, "1.234567e+06"), (100, "100"), (0.0001, "0.0001"), (0.00001, "1e-05"), (1e21, "1e+21"),
        (1e100, "1e+100"), (1.7976931348623157e308, "1.7976931348623157e+308"), (Double.leastNonzeroMagnitude, "5e-324"),
        (0.1 + 0.2, "0.30000000000000004"), (0, "0"), (-0.0, "-0"), (123_456.7, "123456.7"), (-1.5e-7, "-1.5e-07"),
        (2.5e-5, "2.5e-05"), (999_999, "999999"), (9_999_999, "9.999999e+06"), (0.000123, "0.000123"),
    ])
    func floatsAreWrittenAsGoWritesThem(value: Double, text: String) throws {
        #expect(try line([Field("f", .float(value))]) == "m f=\(text)")
    }

    @Test func everyFieldType() throws {
        let text = try line(
            [
                Field("f", .float(1.5)), Field("i", .int(.min)), Field("j", .int(.max)), Field("u", .uint(.max)),
                Field("t", .bool(true)), Field("b", .bool(false)), Field("s", .string("x")),
            ], timestamp: -1)
        #expect(text == "m f=1.5,i=-9223372036854775808i,j=9223372036854775807i,u=18446744073709551615u,t=true,b=false,s=\"x\" -1")
    }

    @Test func escapingPerPosition() throws {
        let text = try line(
            [Field("f k,=\"", .string("a\"b\\c\nd\re\tf, =#"))], measurement: "m e,a=s\"#",
            tags: [Tag("t k,=", "t v,="), Tag(#"a\b"#, #"c\d"#)])
        #expect(text == ##"m\ e\,a=s"#,a\b=c\d,t\ k\,\==t\ v\,\= f\ k\,\="="a\"b\\c\nd\re\tf, =#""##)
    }

    @Test func tagsInSortedOrderAndNoTimestampWhenAbsent() throws {
        #expect(try line([Field("f", .int(1))], tags: [Tag("z", "1"), Tag("a", "2"), Tag("B", "3")]) == "m,B=3,a=2,z=1 f=1i")
    }

    @Test func appendsWithoutTouchingWhatIsThere() throws {
        var output = Array("prefix\n".utf8)
        try serializer.append(Point(measurement: "m", fields: [Field("f", .bool(true))]), to: &output)
        #expect(String(decoding: output, as: UTF8.self) == "prefix\nm f=true")
        #expect(throws: LineProtocolSerializationError.self) {
            try serializer.append(Point(measurement: "m", tags: [Tag("t", "")], fields: [Field("f", .bool(true))]), to: &output)
        }
        #expect(String(decoding: output, as: UTF8.self) == "prefix\nm f=true", "a refused point leaves the buffer as it was")
    }

    @Test func refusesWhatLineProtocolCannotHold() {
        let field = [Field("f", .float(1))]
        let refused: [(Point, RejectReason)] = [
            (Point(measurement: "", fields: field), .invalidMeasurement),
            (Point(measurement: #"m\"#, fields: field), .invalidMeasurement),
            (Point(measurement: "m\n", fields: field), .invalidMeasurement),
            // The reference encoder writes this one, and it then reads back as a comment: the point is lost.
            (Point(measurement: "#m", fields: field), .invalidMeasurement),
            (Point(measurement: "m", fields: []), .invalidField),
            (Point(measurement: "m", tags: [Tag("", "v")], fields: field), .invalidTag),
            (Point(measurement: "m", tags: [Tag("k", "")], fields: field), .invalidTag),
            (Point(measurement: "m", tags: [Tag("k", #"v\"#)], fields: field), .invalidTag),
            (Point(measurement: "m", tags: [Tag("k", "a\u{7F}")], fields: field), .invalidTag),
            (Point(measurement: "m", tags: [Tag("k", "1"), Tag("k", "2")], fields: field), .invalidTag),
            (Point(measurement: "m", fields: [Field("", .float(1))]), .invalidField),
            (Point(measurement: "m", fields: [Field("f\t", .float(1))]), .invalidField),
            (Point(measurement: "m", fields: [Field("f", .float(.nan))]), .invalidFieldValue),
            (Point(measurement: "m", fields: [Field("f", .float(-.infinity))]), .invalidFieldValue),
        ]
        for (point, reason) in refused {
            let error = #expect(throws: LineProtocolSerializationError.self, "\(point)") { try serializer.serialize(point) }
            #expect(error?.reason == reason, "\(point)")
        }
    }

    @Test func whatIsWrittenReadsBackAsTheSamePoint() throws {
        let point = Point(
            measurement: "a b,c=d\\e", tags: [Tag("k\\=", "v\\ ,x")],
            fields: [Field("s", .string("\"\\\n\r\t\\x")), Field("f", .float(-1e-300))], timestampNanoseconds: .min)
        let text = try serializer.serialize(point)
        #expect(try LineProtocolParser().parsePoint(text) == point)
    }
}
