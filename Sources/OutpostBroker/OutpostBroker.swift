// OutpostBroker: the central broker. Topics are partitions over OutpostLog, served over the Kafka wire
// protocol (OutpostKafka) so that any Kafka client produces and consumes without knowing it is not Kafka.
//
// Layers, from the socket inwards:
// - Server/: NIO only. `KafkaConnectionHandler` frames, parses, keeps each connection's responses in
//   request order and carries out what the request handler decided; `Broker` binds, limits connections,
//   starts and stops everything.
// - Security/: the listener's TLS (`TLSFiles` builds the NIOSSL context at start-up) and SASL/PLAIN:
//   `SASLServerStateMachine` is the pure per-connection authentication exchange the connection handler
//   runs before serving anything else; `SASLCredentials` holds the users and compares passwords in
//   constant time.
// - `BrokerRequestHandler`: one method per API; decides the answer from the partitions, the coordinator
//   and the configuration. Produce and Fetch long-poll live in `ProduceHandler` and `FetchHandler`.
// - Partitions/: `BrokerPartition` (idempotence checks + append + commit waits) over the `PartitionReplica`
//   seam. Today's replica is `LocalReplica` (one node: committed = fsynced); a Raft group slots in there.
//   `ProducerStateTable` is the pure idempotence rule set (kafka-subset.md §4).
// - Groups/: `GroupStateMachine` is the pure consumer-group state machine (§5) with an injected clock;
//   `GroupCoordinator` runs its actions (parked requests, timers) and persists committed offsets through
//   `OffsetStore`.
