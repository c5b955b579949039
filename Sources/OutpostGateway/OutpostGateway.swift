// OutpostGateway: The edge gateway: MQTT, UDP, TCP and HTTP listeners feeding a bounded ingest pipeline 
// (parse, validate, partition, batch, gzip) into the durable local log.
