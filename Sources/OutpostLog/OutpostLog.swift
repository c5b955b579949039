// OutpostLog: the segmented partition log under both the gateway's store-and-forward buffer and every
// broker partition.
//
// A partition is a directory of segments; a segment is a `.log` file of RecordBatch v2 batches back to back
// (Kafka tools can read it), with a sparse `.index` and a `.timeindex` that are caches, never the truth.
// Appends assign offsets by rewriting each batch's baseOffset (no re-compression) and are made durable by
// group commit. Opening a log recovers it: every batch not known to be fsynced is re-validated and the log
// is truncated at the first torn or corrupt one.
