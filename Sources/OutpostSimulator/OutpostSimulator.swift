// OutpostSimulator: Device-fleet simulator (fleets from devices/*.yaml, sensor models, senders) and the
// end-to-end verifier that checks a topic against a simulation manifest.
//
// The pure core — fleet files (`FleetLoader`), sensor models (`SensorState`), anomaly plans, the open-loop
// schedule (`Schedule`), payload encoding (`PayloadEncoder`), manifests and the verifier's checker
// (`SequenceChecker`) — takes time and randomness as values: one seed (`SeededGenerator`) decides every
// id, value, sequence number and anomaly, and only timestamps follow the clock. The I/O shell —
// `SimulationRunner` and the transports (TCP, UDP, HTTP, MQTT through OutpostMQTT) and `LogTopicSource` —
// sits around it.
