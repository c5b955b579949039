/// Why bytes could not be read as a Kafka frame, header or message. Any of these closes the connection
/// that sent them (the broker logs the reason); none of them can crash a process.
public enum KafkaProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A field needed `needed` bytes at `position` (relative to the message start) but fewer were left.
    case truncated(field: String, position: Int, needed: Int)
    /// A length or count that is negative (and not the −1 that means null where null is allowed).
    case invalidLength(field: String, length: Int64)
    /// A STRING whose bytes are not UTF-8.
    case invalidUTF8(field: String)
    /// An unsigned varint longer than its type allows.
    case malformedVarint(field: String)
    /// The message ended before the frame did.
    case trailingBytes(count: Int, apiKey: Int16, version: Int16)
    /// A frame's size prefix is negative or zero.
    case invalidFrameSize(Int32)
    /// A frame's size prefix exceeds the configured maximum.
    case frameTooLarge(size: Int, limit: Int)
    /// A large frame does not fit the shared budget for partially received frames (server overload).
    case memoryBudgetExhausted(frameBytes: Int, budgetBytes: Int)
    /// A version outside what this module can encode or decode for that API.
    case unsupportedVersion(apiKey: Int16, version: Int16)
    /// An API key this module does not know.
    case unknownAPIKey(Int16)
    /// The response's correlation id is not the one expected (a client-side check).
    case correlationMismatch(expected: Int32, received: Int32)

    public var description: String {
        switch self {
        case .truncated(let field, let position, let needed):
            "truncated: \(field) needs \(needed) bytes at byte \(position)"
        case .invalidLength(let field, let length): "invalid length \(length) for \(field)"
        case .invalidUTF8(let field): "\(field) is not valid UTF-8"
        case .malformedVarint(let field): "malformed varint in \(field)"
        case .trailingBytes(let count, let apiKey, let version):
            "\(count) bytes left after decoding api \(apiKey) v\(version)"
        case .invalidFrameSize(let size): "invalid frame size \(size)"
        case .frameTooLarge(let size, let limit): "frame of \(size) bytes exceeds the limit of \(limit)"
        case .memoryBudgetExhausted(let frame, let budget):
            "a \(frame)-byte frame does not fit the \(budget)-byte budget for requests being received"
        case .unsupportedVersion(let apiKey, let version): "api \(apiKey) version \(version) is not supported"
        case .unknownAPIKey(let apiKey): "unknown api key \(apiKey)"
        case .correlationMismatch(let expected, let received):
            "correlation id \(received) does not match the expected \(expected)"
        }
    }
}
