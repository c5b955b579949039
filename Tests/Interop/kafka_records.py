#!/usr/bin/env python3
"""Independent RecordBatch v2 implementation for interop tests: kafka-python's `kafka.record`.

  kafka_records.py decode FILE   read back-to-back batches from FILE, print them as JSON
  kafka_records.py encode FILE   write batches built by kafka-python to FILE, print what they hold as JSON

Bytes are hex strings in the JSON so nothing is lost to text encoding.
"""
import json
import sys

try:
    from kafka.record import MemoryRecords
    from kafka.record.default_records import DefaultRecordBatchBuilder
except ImportError:
    sys.stderr.write("kafka-python is not installed: pip install kafka-python (scripts/test installs it)\n")
    sys.exit(3)


def hexify(data):
    return None if data is None else bytes(data).hex()


def decode(path):
    with open(path, "rb") as f:
        data = f.read()
    records = MemoryRecords(data)
    batches = []
    while True:
        batch = records.next_batch()
        if batch is None:
            break
        out = {
            "base_offset": batch.base_offset,
            "crc_valid": batch.validate_crc(),
            "compression": batch.compression_type,
            "producer_id": batch.producer_id,
            "producer_epoch": batch.producer_epoch,
            "base_sequence": batch.base_sequence,
            "leader_epoch": batch.leader_epoch,
            "max_timestamp": batch.max_timestamp,
            "records": [],
        }
        for record in batch:
            out["records"].append({
                "offset": record.offset,
                "timestamp": record.timestamp,
                "key": hexify(record.key),
                "value": hexify(record.value),
                "headers": [[k, hexify(v)] for k, v in record.headers],
            })
        batches.append(out)
    json.dump(batches, sys.stdout)


def encode(path):
    # Two batches: gzip and idempotent with headers; uncompressed with null key/value.
    specs = [
        dict(compression=1, producer_id=4242, producer_epoch=7, base_sequence=100, count=25),
        dict(compression=0, producer_id=-1, producer_epoch=-1, base_sequence=-1, count=5),
    ]
    out_bytes = bytearray()
    described = []
    for spec_index, spec in enumerate(specs):
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=spec["compression"], is_transactional=False,
            producer_id=spec["producer_id"], producer_epoch=spec["producer_epoch"],
            base_sequence=spec["base_sequence"], batch_size=1 << 20)
        records = []
        for i in range(spec["count"]):
            key = None if (spec_index == 1 and i == 0) else ("dev-%d" % (i % 4)).encode()
            value = None if (spec_index == 1 and i == 1) else (
                "m,device=dev-%d v=%d.5,seq=%di %d" % (i % 4, i, i, 1732300000000000000 + i)).encode()
            headers = [("gateway", b"edge-1"), ("empty", None)] if i % 2 == 0 else []
            timestamp = 1732300000000 + i * 3 - (5 if i == 3 else 0)
            builder.append(i, timestamp=timestamp, key=key, value=value, headers=headers)
            records.append({"offset": i, "timestamp": timestamp, "key": hexify(key), "value": hexify(value),
                            "headers": [[k, hexify(v)] for k, v in headers]})
        buf = builder.build()
        out_bytes += bytes(buf)
        described.append({"compression": spec["compression"], "producer_id": spec["producer_id"],
                          "producer_epoch": spec["producer_epoch"], "base_sequence": spec["base_sequence"],
                          "records": records})
    with open(path, "wb") as f:
        f.write(out_bytes)
    json.dump(described, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("decode", "encode"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    {"decode": decode, "encode": encode}[sys.argv[1]](sys.argv[2])
