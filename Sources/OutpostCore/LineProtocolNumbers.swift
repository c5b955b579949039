// Numbers in line protocol, read and written exactly as the reference implementation (Go's strconv) does,
// so that a value means the same here as in InfluxDB and Telegraf.

/// The outcome of reading a number token.
enum LineProtocolNumber<Value> {
    case value(Value)
    /// Not a number of this kind at all (`12a`, `--1`, `1.5i`).
    case malformed
    /// Well formed but beyond the type's range (`9223372036854775808i`, `1e400`).
    case outOfRange
}

/// Reads number tokens in place, without allocating in the common cases.
struct LineProtocolNumberReader {
    let bytes: UnsafeRawPointer

    @inline(__always)
    private func byte(_ index: Int) -> UInt8 {
        bytes.load(fromByteOffset: index, as: UInt8.self)
    }

    /// A decimal signed 64-bit integer: optional `-`, then one or more digits (Go's `ParseInt(s, 10, 64)`
    /// for the tokens line protocol can hand it). Used for `i` fields and timestamps.
    func int64(from start: Int, to end: Int) -> LineProtocolNumber<Int64> {
        var index = start
        var negative = false
        if index < end, byte(index) == LineProtocolByte.minus {
            negative = true
            index += 1
        }
        switch magnitude(from: index, to: end) {
        case .malformed: return .malformed
        case .outOfRange: return .outOfRange
        case .value(let magnitude):
            if negative {
                if magnitude <= UInt64(Int64.max) { return .value(-Int64(magnitude)) }
                if magnitude == UInt64(Int64.max) + 1 { return .value(Int64.min) }
                return .outOfRange
            }
            return magnitude <= UInt64(Int64.max) ? .value(Int64(magnitude)) : .outOfRange
        }
    }

    /// A decimal unsigned 64-bit integer: digits only, no sign (Go's `ParseUint(s, 10, 64)`).
    func uint64(from start: Int, to end: Int) -> LineProtocolNumber<UInt64> {
        magnitude(from: start, to: end)
    }

    private func magnitude(from start: Int, to end: Int) -> LineProtocolNumber<UInt64> {
        guard start < end else { return .malformed }
        var value: UInt64 = 0
        var index = start
        if end - start <= 19 {
            // Nineteen digits cannot overflow a UInt64 (its maximum has twenty), so nanosecond timestamps
            // and ordinary integers need no overflow checks.
            while index < end {
                let digit = byte(index) &- LineProtocolByte.zero
                guard digit <= 9 else { return .malformed }
                value = value &* 10 &+ UInt64(digit)
                index += 1
            }
            return .value(value)
        }
        var overflowed = false
        while index < end {
            let digit = byte(index) &- LineProtocolByte.zero
            guard digit <= 9 else { return .malformed }
            if !overflowed {
                let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times10.addingReportingOverflow(UInt64(digit))
                if overflow1 || overflow2 { overflowed = true } else { value = sum }
            }
            index += 1
        }
        return overflowed ? .outOfRange : .value(value)
    }

    /// A boolean in any spelling the reference accepts: `t T true True TRUE f F false False FALSE`.
    func bool(from start: Int, to end: Int) -> Bool? {
        switch end - start {
        case 1:
            switch byte(start) {
            case UInt8(ascii: "t"), UInt8(ascii: "T"): return true
            case UInt8(ascii: "f"), UInt8(ascii: "F"): return false
            default: return nil
            }
        case 4:
            if matches("true", at: start) || matches("True", at: start) || matches("TRUE", at: start) { return true }
            return nil
        case 5:
            if matches("false", at: start) || matches("False", at: start) || matches("FALSE", at: start) { return false }
            return nil
        default:
            return nil
        }
    }

    @inline(__always)
    private func matches(_ word: StaticString, at start: Int) -> Bool {
        let count = word.utf8CodeUnitCount
        let pointer = word.utf8Start
        var index = 0
        while index < count {
            if byte(start + index) != pointer[index] { return false }
            index += 1
        }
        return true
    }

    /// A float as Go's `strconv.ParseFloat(s, 64)` reads it: decimal (`1`, `-1.5`, `.5`, `5.`, `1e-3`) or
    /// hexadecimal with a binary exponent (`0x1.8p3`), with Go's digit-separating underscores (`1_000.5`).
    /// Infinity and NaN are refused, as the reference refuses them for field values. Values too large for a
    /// Double are out of range; values too small round to zero, as in Go.
    func float(from start: Int, to end: Int) -> LineProtocolNumber<Double> {
        var index = start
        var negative = false
        if index < end, byte(index) == LineProtocolByte.minus || byte(index) == UInt8(ascii: "+") {
            negative = byte(index) == LineProtocolByte.minus
            index += 1
        }
        let isHex = end - index > 2 && byte(index) == LineProtocolByte.zero && byte(index + 1) | 0x20 == UInt8(ascii: "x")
        if isHex { index += 2 }

        // Mantissa: up to 19 significant decimal digits are kept exactly; the rest only move the exponent.
        var sawDigits = false
        var sawDot = false
        var sawUnderscore = false
        var mantissa: UInt64 = 0
        var mantissaDigits = 0
        var truncated = false
        var decimalExponent = 0
        mantissaLoop: while index < end {
            let character = byte(index)
            if character == UInt8(ascii: "_") {
                sawUnderscore = true
                index += 1
                continue
            }
            if character == LineProtocolByte.dot {
                if sawDot { break mantissaLoop }
                sawDot = true
                index += 1
                continue
            }
            let digit: UInt8
            if character >= LineProtocolByte.zero && character <= LineProtocolByte.nine {
                digit = character - LineProtocolByte.zero
            } else if isHex, character | 0x20 >= UInt8(ascii: "a"), character | 0x20 <= UInt8(ascii: "f") {
                digit = (character | 0x20) - UInt8(ascii: "a") + 10
            } else {
                break mantissaLoop
            }
            sawDigits = true
            if !isHex {
                if mantissa == 0 && digit == 0 {
                    if sawDot { decimalExponent -= 1 }
                } else if mantissaDigits < 19 {
                    mantissa = mantissa &* 10 &+ UInt64(digit)
                    mantissaDigits += 1
                    if sawDot { decimalExponent -= 1 }
                } else {
                    if digit != 0 { truncated = true }
                    if !sawDot { decimalExponent += 1 }
                }
            }
            index += 1
        }
        guard sawDigits else { return .malformed }

        var explicitExponent = 0
        let exponentLetter = isHex ? UInt8(ascii: "p") : UInt8(ascii: "e")
        if index < end, byte(index) | 0x20 == exponentLetter {
            index += 1
            guard index < end else { return .malformed }
            var exponentNegative = false
            if byte(index) == UInt8(ascii: "+") {
                index += 1
            } else if byte(index) == LineProtocolByte.minus {
                exponentNegative = true
                index += 1
            }
            guard index < end, byte(index) >= LineProtocolByte.zero, byte(index) <= LineProtocolByte.nine else {
                return .malformed
            }
            var exponent = 0
            while index < end {
                let character = byte(index)
                if character == UInt8(ascii: "_") {
                    sawUnderscore = true
                } else if character >= LineProtocolByte.zero && character <= LineProtocolByte.nine {
                    // Go stops accumulating at 10000 too: any larger exponent already over/underflows.
                    if exponent < 10_000 { exponent = exponent * 10 + Int(character - LineProtocolByte.zero) }
                } else {
                    break
                }
                index += 1
            }
            explicitExponent = exponentNegative ? -exponent : exponent
        } else if isHex {
            return .malformed  // Go requires the `p` exponent on a hexadecimal float.
        }
        if sawUnderscore && !underscoresAllowed(from: start, to: index) { return .malformed }
        guard index == end else { return .malformed }

        if !isHex {
            if mantissa == 0 { return .value(negative ? -0.0 : 0.0) }
            let exponent = decimalExponent + explicitExponent
            // Exact when both the mantissa and 10^|exponent| are exact doubles: one correctly rounded
            // multiplication or division (Clinger's fast path). Covers nearly every sensor reading.
            if !truncated && mantissa <= 1 << 53 && exponent >= -22 && exponent <= 22 {
                var scale = 1.0
                var remaining = exponent < 0 ? -exponent : exponent
                while remaining > 0 {
                    scale *= 10
                    remaining -= 1
                }
                let magnitude = exponent < 0 ? Double(mantissa) / scale : Double(mantissa) * scale
                return .value(negative ? -magnitude : magnitude)
            }
        }
        return slowFloat(from: start, to: end)
    }

    /// Correctly rounded conversion of a token already checked against Go's grammar, by the standard
    /// library's parser (locale independent). Rare: long mantissas, large exponents, hexadecimal.
    private func slowFloat(from start: Int, to end: Int) -> LineProtocolNumber<Double> {
        let text = String(unsafeUninitializedCapacity: end - start) { buffer in
            var written = 0
            var index = start
            while index < end {
                let character = byte(index)
                if character != UInt8(ascii: "_") {
                    buffer[written] = character
                    written += 1
                }
                index += 1
            }
            return written
        }
        guard let value = Double(text) else { return .malformed }
        return value.isFinite ? .value(value) : .outOfRange
    }

    /// Go's rule for `_` in numbers: only between digits, or between a base prefix and a digit.
    private func underscoresAllowed(from start: Int, to end: Int) -> Bool {
        enum Previous { case start, digit, underscore, other }
        var previous = Previous.start
        var index = start
        if index < end, byte(index) == LineProtocolByte.minus || byte(index) == UInt8(ascii: "+") { index += 1 }
        var isHex = false
        if end - index >= 2, byte(index) == LineProtocolByte.zero {
            let prefix = byte(index + 1) | 0x20
            if prefix == UInt8(ascii: "b") || prefix == UInt8(ascii: "o") || prefix == UInt8(ascii: "x") {
                index += 2
                previous = .digit  // a base prefix counts as a digit here
                isHex = prefix == UInt8(ascii: "x")
            }
        }
        while index < end {
            let character = byte(index)
            let lower = character | 0x20
            if (character >= LineProtocolByte.zero && character <= LineProtocolByte.nine)
                || (isHex && lower >= UInt8(ascii: "a") && lower <= UInt8(ascii: "f")) {
                previous = .digit
            } else if character == UInt8(ascii: "_") {
                if previous != .digit { return false }
                previous = .underscore
            } else {
                if previous == .underscore { return false }
                previous = .other
            }
            index += 1
        }
        return previous != .underscore
    }
}

/// Writes numbers as the reference encoder does.
enum LineProtocolNumberWriter {
    static func appendDecimal(_ value: UInt64, to output: inout [UInt8]) {
        if value < 10 {
            output.append(LineProtocolByte.zero + UInt8(value))
            return
        }
        // 20 digits hold any UInt64; fill from the right, then copy.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var remaining = value
            var index = 20
            while remaining > 0 {
                index -= 1
                digits[index] = LineProtocolByte.zero + UInt8(remaining % 10)
                remaining /= 10
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: digits[index..<20]))
        }
    }

    static func appendDecimal(_ value: Int64, to output: inout [UInt8]) {
        if value < 0 { output.append(LineProtocolByte.minus) }
        appendDecimal(value.magnitude, to: &output)
    }

    /// Go's `strconv.AppendFloat(dst, value, 'g', -1, 64)`: the shortest digits that read back as the same
    /// double, in plain notation when the decimal exponent is in -4..<6 and in `d.ddde±XX` form otherwise:
    /// `1`, `-0.64`, `12.123`, `6.632243e+06`, `1e-05`, `5e-324`. The value must be finite.
    static func appendGoFloat(_ value: Double, to output: inout [UInt8]) {
        if value.sign == .minus { output.append(LineProtocolByte.minus) }
        if value == 0 {
            output.append(LineProtocolByte.zero)
            return
        }
        // Swift's description already holds the shortest round-tripping digits (as Go's does); only the
        // layout differs, so take the digits and decimal exponent from it and lay them out Go's way.
        // A double has at most 17 significant digits.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { digitBuffer in
            var digitCount = 0
            var pointPosition = 0  // value = 0.d1d2d3... × 10^pointPosition
            var seenPoint = false
            var exponent = 0
            var exponentNegative = false
            var inExponent = false
            for character in value.magnitude.description.utf8 {
                if inExponent {
                    if character == LineProtocolByte.minus {
                        exponentNegative = true
                    } else if character >= LineProtocolByte.zero && character <= LineProtocolByte.nine {
                        exponent = exponent * 10 + Int(character - LineProtocolByte.zero)
                    }
                    continue
                }
                switch character {
                case LineProtocolByte.dot:
                    seenPoint = true
                case UInt8(ascii: "e"), UInt8(ascii: "E"):
                    inExponent = true
                case LineProtocolByte.zero...LineProtocolByte.nine:
                    if digitCount == 0 && character == LineProtocolByte.zero {
                        if seenPoint { pointPosition -= 1 }  // leading zero after the point: 0.00123
                    } else if digitCount < digitBuffer.count {
                        digitBuffer[digitCount] = character
                        digitCount += 1
                        if !seenPoint { pointPosition += 1 }
                    }
                default:
                    break
                }
            }
            pointPosition += exponentNegative ? -exponent : exponent
            while digitCount > 0 && digitBuffer[digitCount - 1] == LineProtocolByte.zero { digitCount -= 1 }
            let digits = UnsafeBufferPointer(rebasing: digitBuffer[..<digitCount])
            appendGoLayout(digits: digits, pointPosition: pointPosition, to: &output)
        }
    }

    /// Lays out significant digits (value = 0.d1d2... × 10^pointPosition) as Go's 'g' format does.
    private static func appendGoLayout(digits: UnsafeBufferPointer<UInt8>, pointPosition: Int, to output: inout [UInt8]) {
        guard !digits.isEmpty else {
            output.append(LineProtocolByte.zero)
            return
        }
        let decimalExponent = pointPosition - 1
        if decimalExponent < -4 || decimalExponent >= 6 {
            output.append(digits[0])
            if digits.count > 1 {
                output.append(LineProtocolByte.dot)
                output.append(contentsOf: digits[1...])
            }
            output.append(UInt8(ascii: "e"))
            output.append(decimalExponent < 0 ? LineProtocolByte.minus : UInt8(ascii: "+"))
            let magnitude = decimalExponent.magnitude
            if magnitude < 10 { output.append(LineProtocolByte.zero) }
            appendDecimal(UInt64(magnitude), to: &output)
            return
        }
        if pointPosition <= 0 {
            output.append(LineProtocolByte.zero)
            output.append(LineProtocolByte.dot)
            for _ in 0 ..< -pointPosition { output.append(LineProtocolByte.zero) }
            output.append(contentsOf: digits)
            return
        }
        if digits.count <= pointPosition {
            output.append(contentsOf: digits)
            for _ in 0 ..< pointPosition - digits.count { output.append(LineProtocolByte.zero) }
            return
        }
        output.append(contentsOf: digits[..<pointPosition])
        output.append(LineProtocolByte.dot)
        output.append(contentsOf: digits[pointPosition...])
    }
}
