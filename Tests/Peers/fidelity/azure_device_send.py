"""Azure's Python device SDK (azure-iot-device 2.14.0) sends one telemetry message and exits.

usage: azure_device_send.py CONNECTION_STRING CA_FILE WEBSOCKET_PORT TEXT
It speaks MQTT over WebSockets (websockets=True), whose port 443 is changed to WEBSOCKET_PORT in paho's connect, as
in azure_device_sdk.py. The message carries content type, encoding and the property source=azure-iot-device.
"""
import sys

import paho.mqtt.client as paho
from azure.iot.device import IoTHubDeviceClient, Message

connection_string, ca_file, websocket_port, text = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
dial = paho.Client.connect


def connect_to_test_port(self, host, port=1883, *args, **kwargs):
    return dial(self, host, websocket_port if port == 443 else port, *args, **kwargs)


paho.Client.connect = connect_to_test_port
with open(ca_file) as handle:
    ca = handle.read()
client = IoTHubDeviceClient.create_from_connection_string(connection_string, server_verification_cert=ca, websockets=True)
client.connect()
message = Message(text, content_encoding="utf-8", content_type="application/json")
message.custom_properties["source"] = "azure-iot-device"
client.send_message(message)
client.shutdown()
print("sent", text, flush=True)
