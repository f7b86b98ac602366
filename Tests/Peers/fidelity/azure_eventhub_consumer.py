"""Azure's Python Event Hubs client (azure-eventhub 5.15.0's EventHubConsumerClient) reads device telemetry from
the emulator's Event Hub-compatible endpoint, with the connection string the emulator prints.

usage: azure_eventhub_consumer.py CONNECTION_STRING CA_FILE ENDPOINT START COUNT [PARTITION]
ENDPOINT: "-" to dial as printed (TLS always goes to port 5671), or sb://host:port for custom_endpoint_address.
START: "-1" (the beginning), "offset:N" (after offset N), "sequence:N" (after sequence number N) or "time:MS"
(enqueued after MS milliseconds since 1970).
The consumer group is $Default, or CONSUMER_GROUP from the environment.
Prints "partitions P,P,…", "partition-properties P BEGIN LAST EMPTY" for PARTITION (or 0), and one
"event PARTITION SEQUENCE OFFSET DEVICE MODULE BODY PROPERTIES" line per event; stops after COUNT events (or 30 s)
and exits 0 when COUNT arrived.
"""
import datetime
import json
import os
import sys
import threading

from azure.eventhub import EventHubConsumerClient

connection_string, ca_file, endpoint, start, count = sys.argv[1:6]
partition = sys.argv[6] if len(sys.argv) > 6 else None
count = int(count)
options = {"connection_verify": ca_file}
if endpoint != "-":
    options["custom_endpoint_address"] = endpoint
group = os.environ.get("CONSUMER_GROUP", "$Default")
client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group=group, **options)
print("partitions", ",".join(client.get_partition_ids()), flush=True)
facts = client.get_partition_properties(partition or "0")
print("partition-properties", facts["id"], facts["beginning_sequence_number"], facts["last_enqueued_sequence_number"],
      facts["is_empty"], flush=True)
if start.startswith("offset:"):
    position, inclusive = start[len("offset:"):], False
elif start.startswith("sequence:"):
    position, inclusive = int(start[len("sequence:"):]), False
elif start.startswith("time:"):
    position = datetime.datetime.fromtimestamp(int(start[len("time:"):]) / 1000, tz=datetime.timezone.utc)
    inclusive = False
else:
    position, inclusive = start, False
received = []
lock = threading.Lock()


def on_event(context, event):
    if event is None:
        return
    system = {k.decode() if isinstance(k, bytes) else k: v for k, v in event.system_properties.items()}
    device = system.get("iothub-connection-device-id", b"")
    module = system.get("iothub-connection-module-id", b"-")
    properties = {k.decode() if isinstance(k, bytes) else k: (v.decode() if isinstance(v, bytes) else v)
                  for k, v in (event.properties or {}).items()}
    with lock:
        received.append(event)
        print("event", context.partition_id, event.sequence_number, event.offset,
              device.decode() if isinstance(device, bytes) else device,
              module.decode() if isinstance(module, bytes) else module,
              event.body_as_str(), json.dumps(properties, sort_keys=True), flush=True)
        if len(received) >= count:
            threading.Thread(target=client.close).start()


timer = threading.Timer(30, client.close)
timer.start()
receive = {"on_event": on_event, "starting_position": position, "starting_position_inclusive": inclusive}
if partition is not None:
    receive["partition_id"] = partition
client.receive(**receive)
timer.cancel()
sys.exit(0 if len(received) >= count else 1)
