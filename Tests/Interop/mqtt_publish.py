#!/usr/bin/env python3
"""Publishes MQTT messages with paho-mqtt, the Python client sensors often use.

  mqtt_publish.py HOST PORT QOS < messages     (one message per line: a JSON array [TOPIC, PAYLOAD])

Waits until every QoS 1 publish is acknowledged; exits 0 then, 1 on failure.
"""
import json
import sys
import paho.mqtt.client as mqtt

host, port, qos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="outpost-test-paho")
client.connect(host, port)
client.loop_start()
infos = []
for line in sys.stdin:
    line = line.rstrip("\n")
    if not line:
        continue
    topic, payload = json.loads(line)
    infos.append(client.publish(topic, payload.encode(), qos=qos))
for info in infos:
    info.wait_for_publish(timeout=30)
    if not info.is_published():
        sys.stderr.write("publish not acknowledged\n")
        sys.exit(1)
client.loop_stop()
client.disconnect()
