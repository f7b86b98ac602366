#!/usr/bin/env python3
"""paho-mqtt sending COUNT QoS 1 messages of 256 bytes over TLS, max_inflight 20, waiting for every PUBACK.
usage: paho_bench.py PORT CAFILE COUNT [ws|tcp DEVICE_ID SAS_TOKEN]
With `ws`, MQTT runs in a WebSocket (`transport="websockets"`, path `/$iothub/websocket`). With a DEVICE_ID and
SAS_TOKEN it connects as that device of bench-hub.azure-devices.net (for the emulator); without, with any password
(for mosquitto)."""
import ssl, sys, threading, time
import paho.mqtt.client as mqtt

port, ca_file, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
websockets = len(sys.argv) > 4 and sys.argv[4] == "ws"
device, password = (sys.argv[5], sys.argv[6]) if len(sys.argv) > 6 else ("paho", "any")
done = threading.Event()
acked = 0

def on_publish(client, userdata, mid, *args):
    global acked
    acked += 1
    if acked == count:
        done.set()

transport = "websockets" if websockets else "tcp"
client_id = device if len(sys.argv) > 6 else "paho-bench"
try:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id, transport=transport)
except AttributeError:
    client = mqtt.Client(client_id=client_id, transport=transport)
if websockets:
    client.ws_set_options(path="/$iothub/websocket")
client.tls_set(ca_certs=ca_file)
client.username_pw_set("bench-hub.azure-devices.net/%s/?api-version=2021-04-12" % device, password)
client.max_inflight_messages_set(20)
client.max_queued_messages_set(0)
client.on_publish = on_publish
start = time.perf_counter()
client.connect("localhost", port, keepalive=60)
client.loop_start()
payload = b"x" * 256
for _ in range(count):
    client.publish("devices/%s/messages/events/" % device, payload, qos=1)
done.wait(300)
elapsed = time.perf_counter() - start
client.disconnect()
client.loop_stop()
label = "paho-mqtt-ws" if websockets else "paho-mqtt"
print(f"{label} {mqtt.__version__ if hasattr(mqtt, '__version__') else ''}: {count} QoS1 msgs x 256 B in {elapsed:.3f} s = {count / elapsed:.0f} msg/s (max_inflight 20), acked {acked}")
