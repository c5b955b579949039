// OutpostKafka: the Kafka wire protocol for the subset in ../shared/kafka-subset.md.
//
// - Primitives (`KafkaReader`, `KafkaWriter`) read and write Kafka's types on a NIO `ByteBuffer`; every read
//   is bounds-checked and throws `KafkaProtocolError`, so hostile bytes never trap.
// - One struct per request and per response (`ProduceRequest`, `FetchResponse`, …), each with both
//   `init(from:version:)` and `encode(to:version:)`: the broker decodes requests and encodes responses, a
//   client encodes requests and decodes responses, with the same types. `KafkaRequest`/`KafkaResponse`
//   dispatch on the API key.
// - Framing: `KafkaFrameDecoder` (a `ByteToMessageDecoder` with a frame-size limit) and
//   `KafkaFrame.encodeRequest`/`encodeResponse` for the size-prefixed frames.
// - Every Kafka error code this project uses lives in `KafkaErrorCode`.
//
// The client (idempotent producer, consumer, group member) builds on these types.
