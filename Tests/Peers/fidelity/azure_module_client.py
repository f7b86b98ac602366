"""Azure's own Python module client (azure-iot-device 2.14.0) as an IoT Edge module against the emulator:
`IoTHubModuleClient.create_from_edge_environment()` reads the IOTEDGE_* variables the emulator printed, fetches the
trust bundle and signs its SAS token through the emulator's workload socket, and connects to the gateway on port
8883. It sends one message to its output `toSwift`, then waits for one on its input `fromSwift`. Input messages go to
a handler set before connecting, so one that arrives before the script waits for it is kept, not dropped.

usage: azure_module_client.py        (with the module's IOTEDGE_* variables in the environment)
Prints one line per step.
"""
import json
import queue
import sys

from azure.iot.device import IoTHubModuleClient, Message

client = IoTHubModuleClient.create_from_edge_environment()
inputs = queue.Queue()
client.on_message_received = inputs.put
client.connect()
print("connected", flush=True)

message = Message('{"reading": 7}', message_id="py-module-1", content_encoding="utf-8", content_type="application/json")
message.custom_properties["origin"] = "python module"
client.send_message_to_output(message, "toSwift")
print("sent to output toSwift", flush=True)

try:
    received = inputs.get(timeout=60)
except queue.Empty:
    print("nothing on input fromSwift")
    sys.exit(1)
print(
    "input:",
    received.input_name,
    received.data.decode(),
    json.dumps(received.custom_properties, sort_keys=True),
    received.message_id,
    flush=True,
)
client.shutdown()
print("done", flush=True)
