/// Bounds on what one reading may be. Reaching one rejects that reading with a reason; it never stops the
/// readings around it.
public struct PointLimits: Hashable, Sendable {
    /// Longest accepted line or JSON document, in bytes. 64 KiB is InfluxDB's default max line size for
    /// Telegraf's socket listener and far above any sensor reading.
    public var lineBytesMax: Int
    /// Tags per point. InfluxDB warns beyond a few dozen; 64 leaves room for enrichment (gateway id etc.).
    public var tagsPerPointMax: Int
    /// Fields per point. 256 covers multi-channel devices while keeping one point well under a batch.
    public var fieldsPerPointMax: Int

    public init(lineBytesMax: Int = 65_536, tagsPerPointMax: Int = 64, fieldsPerPointMax: Int = 256) {
        self.lineBytesMax = lineBytesMax
        self.tagsPerPointMax = tagsPerPointMax
        self.fieldsPerPointMax = fieldsPerPointMax
    }

    public static let standard = PointLimits()
}
