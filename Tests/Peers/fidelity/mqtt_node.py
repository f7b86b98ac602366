"""Plays the Node-RED MQTT output node of the IoT Edge write-up with paho-mqtt: MQTT 3.1.1 (legacy 3.1 unchecked),
TLS with the given CA, the client id, user name and password exactly as given, then one publish per
(QOS, TOPIC, MESSAGE) triple with retain false, each waited for (PUBACK for QoS 1, written for QoS 0).

usage: mqtt_node.py HOST PORT CA_FILE CLIENT_ID USERNAME PASSWORD QOS TOPIC MESSAGE [QOS TOPIC MESSAGE ...]
Prints `published N` once every publish is done, or `refused rc=N` (exit 2) when CONNACK refuses.
"""
import ssl
import sys
import threading

import paho.mqtt.client as mqtt

host, port, ca_file, client_id, username, password = sys.argv[1:7]
rest = sys.argv[7:]
publishes = [(int(rest[i]), rest[i + 1], rest[i + 2]) for i in range(0, len(rest) - 2, 3)]
connected = threading.Event()
done = threading.Event()
outcome = {"acked": set()}


def on_connect(client, userdata, flags, rc):
    outcome["rc"] = rc
    connected.set()
    if rc != 0:
        done.set()


def on_publish(client, userdata, mid):
    outcome["acked"].add(mid)
    if len(outcome["acked"]) == len(publishes):
        done.set()


client = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
client.username_pw_set(username=username, password=password)
client.tls_set(ca_certs=ca_file, tls_version=ssl.PROTOCOL_TLSv1_2)
client.on_connect = on_connect
client.on_publish = on_publish
client.connect(host, int(port), keepalive=60)
client.loop_start()
if connected.wait(15) and outcome.get("rc") == 0:
    for qos, topic, message in publishes:
        client.publish(topic, message, qos=qos, retain=False)
finished = done.wait(15)
client.disconnect()
client.loop_stop()
if outcome.get("rc", 0) != 0:
    print("refused rc=%d" % outcome["rc"])
    sys.exit(2)
if not finished:
    print("not every publish completed: %d of %d" % (len(outcome["acked"]), len(publishes)))
    sys.exit(1)
print("published %d" % len(publishes))
