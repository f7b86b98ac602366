#!/usr/bin/env python3
"""paho-mqtt sending COUNT QoS 1 messages of 256 bytes over TLS, max_inflight 20, waiting for every PUBACK.
usage: paho_bench.py PORT CAFILE COUNT"""
import ssl, sys, threading, time
import paho.mqtt.client as mqtt

port, ca_file, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
done = threading.Event()
acked = 0

def on_publish(client, userdata, mid, *args):
    global acked
    acked += 1
    if acked == count:
        done.set()

try:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id="paho-bench")
except AttributeError:
    client = mqtt.Client(client_id="paho-bench")
client.tls_set(ca_certs=ca_file)
client.username_pw_set("bench-hub.azure-devices.net/paho/?api-version=2021-04-12", "any")
client.max_inflight_messages_set(20)
client.max_queued_messages_set(0)
client.on_publish = on_publish
start = time.perf_counter()
client.connect("localhost", port, keepalive=60)
client.loop_start()
payload = b"x" * 256
for _ in range(count):
    client.publish("devices/paho/messages/events/", payload, qos=1)
done.wait(300)
elapsed = time.perf_counter() - start
client.disconnect()
client.loop_stop()
print(f"paho-mqtt {mqtt.__version__ if hasattr(mqtt, '__version__') else ''}: {count} QoS1 msgs x 256 B in {elapsed:.3f} s = {count / elapsed:.0f} msg/s (max_inflight 20), acked {acked}")
