"""paho-mqtt 1.6.1 over WebSockets (`transport="websockets"`) against an IoT Hub endpoint, the way Azure's MQTT samples
use it: TLS, path `/$iothub/websocket`, the SAS token as password; one QoS 1 telemetry message with a property bag,
then a twin GET answered on `$iothub/twin/res/200/`.

usage: paho_websockets.py HOST PORT HUB_HOST DEVICE_ID SAS_TOKEN CA_FILE
Prints one line per step and exits 0 when every step succeeded.
"""
import queue
import sys

import paho.mqtt.client as mqtt

host, port, hub_host, device_id, token, ca_file = sys.argv[1:7]
events = queue.Queue()

client = mqtt.Client(client_id=device_id, clean_session=False, protocol=mqtt.MQTTv311, transport="websockets")
client.ws_set_options(path="/$iothub/websocket")
client.tls_set(ca_certs=ca_file)
client.username_pw_set("%s/%s/?api-version=2021-04-12" % (hub_host, device_id), token)
client.on_connect = lambda c, u, flags, rc: events.put(("connect", rc))
client.on_publish = lambda c, u, mid: events.put(("puback", mid))
client.on_subscribe = lambda c, u, mid, granted: events.put(("suback", granted))
client.on_message = lambda c, u, message: events.put(("message", message.topic, message.payload))


def expect(kind, timeout=20):
    while True:
        event = events.get(timeout=timeout)
        if event[0] == kind:
            return event


client.connect(host, int(port), keepalive=60)
client.loop_start()
rc = expect("connect")[1]
print("connack", rc, flush=True)
if rc != 0:
    sys.exit(1)
info = client.publish("devices/%s/messages/events/room=lab&%%24.ct=application%%2Fjson" % device_id, b'{"via": "paho-ws"}', qos=1)
expect("puback")
print("telemetry acknowledged", flush=True)
client.subscribe("$iothub/twin/res/#", qos=0)
expect("suback")
client.publish("$iothub/twin/GET/?$rid=7", b"", qos=0)
_, topic, payload = expect("message")
print("twin answer", topic, payload.decode(), flush=True)
client.disconnect()
client.loop_stop()
sys.exit(0 if topic.startswith("$iothub/twin/res/200/") else 1)
