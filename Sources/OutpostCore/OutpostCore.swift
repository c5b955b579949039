// OutpostCore: the formats every other module speaks, as values and pure functions.
//
// A reading is a `Point` (InfluxDB line-protocol model). Points arrive as line protocol, JSON or plain MQTT
// values and travel as Kafka RecordBatch v2 batches (key = device id, value = the point in line protocol),
// compressed with gzip. Nothing here does I/O, reads a clock or draws random numbers: time comes in as values.
