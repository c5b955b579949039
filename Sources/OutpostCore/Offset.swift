/// A record's position in a partition: the n-th record ever appended has offset n.
/// A distinct type so an offset is never passed where a byte count or a sequence number is meant.
public struct Offset: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByIntegerLiteral {
    public var rawValue: Int64

    public init(rawValue: Int64) { self.rawValue = rawValue }
    public init(_ value: Int64) { self.rawValue = value }
    public init(integerLiteral value: Int64) { self.rawValue = value }

    public static func < (lhs: Offset, rhs: Offset) -> Bool { lhs.rawValue < rhs.rawValue }
    public static func + (lhs: Offset, rhs: Int64) -> Offset { Offset(lhs.rawValue + rhs) }
    public static func - (lhs: Offset, rhs: Offset) -> Int64 { lhs.rawValue - rhs.rawValue }

    public var description: String { String(rawValue) }
}
