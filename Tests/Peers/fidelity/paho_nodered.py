"""Connects the way the Node-RED MQTT node is configured in the IoT Hub write-up: paho-mqtt, MQTT 3.1.1, client id =
device id, username `{hub}.azure-devices.net/{device}/?api-version=2018-06-30`, password = SAS token, TLS to port
8883 with the hub's CA, QoS 1 publish to `devices/{device}/messages/events/`.

usage: paho_nodered.py HOST PORT CA_FILE DEVICE_ID HUB_HOST SAS_TOKEN MESSAGE
Prints `published mid=N` once the PUBACK arrives, or `refused rc=N` when CONNACK refuses.
"""
import ssl
import sys
import threading

import paho.mqtt.client as mqtt

host, port, ca_file, device_id, hub_host, token, message = sys.argv[1:8]
done = threading.Event()
outcome = {}


def on_connect(client, userdata, flags, rc):
    if rc != 0:
        outcome["refused"] = rc
        done.set()
        return
    info = client.publish("devices/%s/messages/events/" % device_id, message, qos=1)
    outcome["mid"] = info.mid


def on_publish(client, userdata, mid):
    outcome["acked"] = mid
    done.set()


client = mqtt.Client(client_id=device_id, protocol=mqtt.MQTTv311, clean_session=True)
client.username_pw_set(username="%s/%s/?api-version=2018-06-30" % (hub_host, device_id), password=token)
client.tls_set(ca_certs=ca_file, tls_version=ssl.PROTOCOL_TLSv1_2)
client.on_connect = on_connect
client.on_publish = on_publish
client.connect(host, int(port), keepalive=60)
client.loop_start()
finished = done.wait(15)
client.disconnect()
client.loop_stop()
if "refused" in outcome:
    print("refused rc=%d" % outcome["refused"])
    sys.exit(2)
if not finished or "acked" not in outcome:
    print("no PUBACK")
    sys.exit(1)
print("published mid=%d" % outcome["acked"])
