/// A set of sequence numbers kept as sorted, disjoint, non-adjacent ranges: a device that sent 0…99,999
/// in order costs one range. Adding in order is O(1); out of order, O(log n + ranges moved).
public struct SequenceRanges: Sendable, Hashable, CustomStringConvertible {
    public private(set) var ranges: [ClosedRange<Int64>] = []

    public init() {}

    public init(_ ranges: [ClosedRange<Int64>]) {
        for range in ranges { insert(range) }
    }

    public var isEmpty: Bool { ranges.isEmpty }
    public var count: Int64 { ranges.reduce(0) { $0 + $1.upperBound - $1.lowerBound + 1 } }

    public mutating func insert(_ value: Int64) {
        if let last = ranges.last {
            if value == last.upperBound + 1 {
                ranges[ranges.count - 1] = last.lowerBound...value
                return
            }
            if value > last.upperBound + 1 {
                ranges.append(value...value)
                return
            }
        } else {
            ranges.append(value...value)
            return
        }
        insert(value...value)
    }

    public mutating func insert(_ range: ClosedRange<Int64>) {
        // First range that ends at or after range.lowerBound - 1 (could merge).
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound < range.lowerBound - 1 { low = middle + 1 } else { high = middle }
        }
        var merged = range
        var end = low
        while end < ranges.count && ranges[end].lowerBound <= range.upperBound + 1 {
            merged = min(merged.lowerBound, ranges[end].lowerBound)...max(merged.upperBound, ranges[end].upperBound)
            end += 1
        }
        ranges.replaceSubrange(low..<end, with: [merged])
    }

    public func contains(_ value: Int64) -> Bool {
        var low = 0
        var high = ranges.count
        while low < high {
            let middle = (low + high) / 2
            if ranges[middle].upperBound < value { low = middle + 1 } else { high = middle }
        }
        return low < ranges.count && ranges[low].contains(value)
    }

    /// Every value in `self` and not in `other`.
    public func subtracting(_ other: SequenceRanges) -> SequenceRanges {
        var result = SequenceRanges()
        var otherIndex = 0
        for range in ranges {
            var start = range.lowerBound
            while otherIndex < other.ranges.count && other.ranges[otherIndex].upperBound < start { otherIndex += 1 }
            var scan = otherIndex
            while start <= range.upperBound {
                guard scan < other.ranges.count, other.ranges[scan].lowerBound <= range.upperBound else {
                    result.ranges.append(start...range.upperBound)
                    break
                }
                let cut = other.ranges[scan]
                if cut.lowerBound > start { result.ranges.append(start...(cut.lowerBound - 1)) }
                start = max(start, cut.upperBound + 1)
                scan += 1
            }
        }
        return result
    }

    /// "0-99,101,103-200": the manifest's compact form.
    public var description: String {
        ranges.map { $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)" }.joined(separator: ",")
    }

    /// Parses the compact form; nil when malformed.
    public init?(parsing text: String) {
        guard !text.isEmpty else { return }
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let lower = Int64(bounds[0]), lower >= 0 else { return nil }
            let upper = bounds.count == 2 ? Int64(bounds[1]) : lower
            guard let upper, upper >= lower else { return nil }
            insert(lower...upper)
        }
    }
}
