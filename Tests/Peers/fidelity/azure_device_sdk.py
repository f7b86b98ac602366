"""Azure's own Python device SDK (azure-iot-device 2.14.0) against the emulator: connect with a connection string
(through GatewayHostName, trusting the emulator's CA as an IoT Edge root), send telemetry with content type, content
encoding and custom properties, answer one direct method, patch reported properties, receive a C2D message.

usage: azure_device_sdk.py CONNECTION_STRING CA_FILE [WEBSOCKET_PORT]
With WEBSOCKET_PORT the SDK speaks MQTT over WebSockets (`websockets=True`). It always dials port 443 then, which a
test cannot listen on without privileges, so only the port number paho is handed is changed to WEBSOCKET_PORT; the
path, sub-protocol and everything on the wire stay the SDK's.
Prints one line per step; the emulator side of the test drives the method and C2D.
"""
import json
import sys

from azure.iot.device import IoTHubDeviceClient, Message, MethodResponse

connection_string, ca_file = sys.argv[1:3]
websocket_port = int(sys.argv[3]) if len(sys.argv) > 3 else None
with open(ca_file) as handle:
    ca = handle.read()

if websocket_port is not None:
    import paho.mqtt.client as paho

    dial = paho.Client.connect

    def connect_to_test_port(self, host, port=1883, *args, **kwargs):
        return dial(self, host, websocket_port if port == 443 else port, *args, **kwargs)

    paho.Client.connect = connect_to_test_port

client = IoTHubDeviceClient.create_from_connection_string(
    connection_string, server_verification_cert=ca, websockets=websocket_port is not None
)
client.connect()
print("connected", flush=True)

message = Message('{"temperature": 22.5}', message_id="sdk-1", content_encoding="utf-8", content_type="application/json")
message.custom_properties["alert"] = "high temp"
message.custom_properties["room"] = "lab/1"
client.send_message(message)
print("telemetry sent", flush=True)

client.patch_twin_reported_properties({"firmware": "2.14.0", "sdk": "python"})
print("reported patched", flush=True)
twin = client.get_twin()
print("twin desired:", json.dumps(twin["desired"], sort_keys=True), flush=True)

request = client.receive_method_request(timeout=30)
if request is None:
    print("no method request")
    sys.exit(1)
client.send_method_response(MethodResponse.create_from_method_request(request, 200, {"handled": request.name, "payload": request.payload}))
print("method answered:", request.name, flush=True)

c2d = client.receive_message(timeout=30)
if c2d is None:
    print("no C2D message")
    sys.exit(1)
print("c2d:", c2d.data.decode(), json.dumps(c2d.custom_properties, sort_keys=True), flush=True)
client.shutdown()
print("done", flush=True)
