"""Azure's Python service SDK (azure-iot-hub 2.7.0's IoTHubRegistryManager) against the emulator's service REST API,
with the connection string the emulator prints. The emulator's CA is trusted through REQUESTS_CA_BUNDLE.

usage: azure_service_sdk.py CONNECTION_STRING CA_FILE create DEVICE_ID PRIMARY_KEY
       azure_service_sdk.py CONNECTION_STRING CA_FILE scenario CONNECTED_DEVICE_ID CREATED_DEVICE_ID READ_ONLY_CONNECTION_STRING
       azure_service_sdk.py CONNECTION_STRING CA_FILE c2d DEVICE_ID OFFLINE_DEVICE_ID
The c2d phase goes over AMQP (uamqp, port 5671 of the connection string's host, CA from SSL_CERT_FILE).
Prints one line per step ("step: result") and exits 0 when every step ran.
"""
import os
import sys

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod, QuerySpecification, Twin, TwinProperties
from msrest.exceptions import HttpOperationError

connection_string, ca_file, phase = sys.argv[1:4]
os.environ["REQUESTS_CA_BUNDLE"] = ca_file
manager = IoTHubRegistryManager.from_connection_string(connection_string)


def status_of(call):
    """The HTTP status a call failed with, or 'ok'."""
    try:
        call()
        return "ok"
    except HttpOperationError as error:
        return str(error.response.status_code)


if phase == "create":
    device_id, key = sys.argv[4:6]
    device = manager.create_device_with_sas(device_id, key, None, "enabled")
    print("created:", device.device_id, device.authentication.type, device.status, flush=True)
    module = manager.create_module_with_sas(device_id, "m1", None, None, None)
    print("module:", module.module_id, bool(module.authentication.symmetric_key.primary_key), flush=True)
    print("duplicate:", status_of(lambda: manager.create_device_with_sas(device_id, None, None, "enabled")), flush=True)
    sys.exit(0)

if phase == "c2d":
    import time

    device_id, offline_id = sys.argv[4:6]
    manager.send_c2d_message(device_id, "switch on", properties={
        "messageId": "svc-c2d-1", "correlationId": "corr-7", "contentType": "text/plain", "zone": "b", "iothub-ack": "full",
    })
    print("sent:", "svc-c2d-1", flush=True)
    # Expires a second from now while its device is away: negative feedback.
    manager.send_c2d_message(offline_id, "too late", properties={
        "messageId": "svc-c2d-2", "expiryTimeUtc": int(time.time() * 1000) + 1000, "iothub-ack": "negative",
    })
    print("sent:", "svc-c2d-2", flush=True)
    try:
        manager.send_c2d_message("no-such-device", "lost", properties={})
        print("unknown: sent", flush=True)
    except Exception as error:
        print("unknown: refused", flush=True)
    sys.exit(0)

connected, created, read_only = sys.argv[4:7]
device = manager.get_device(created)
print("get:", device.device_id, device.status, device.connection_state, device.etag, flush=True)
print("modules:", ",".join(sorted(m.module_id for m in manager.get_modules(created))), flush=True)

twin = manager.get_twin(connected)
print("twin:", twin.device_id, twin.properties.desired["$version"], twin.connection_state, flush=True)
patch = Twin(tags={"building": "43"}, properties=TwinProperties(desired={"targetTemperature": 25}))
updated = manager.update_twin(connected, patch, twin.etag)
print("twin-updated:", updated.properties.desired["$version"], updated.properties.desired["targetTemperature"], updated.tags["building"], flush=True)
print("stale-etag:", status_of(lambda: manager.update_twin(connected, patch, twin.etag)), flush=True)

method = CloudToDeviceMethod(method_name="reboot", payload={"delay": 3}, response_timeout_in_seconds=30)
result = manager.invoke_device_method(connected, method)
print("method:", result.status, result.payload, flush=True)
module_result = manager.invoke_device_module_method(connected, "mod1", CloudToDeviceMethod(
    method_name="calibrate", payload=[1, 2], response_timeout_in_seconds=30))
print("module-method:", module_result.status, module_result.payload, flush=True)
module_twin = manager.get_module_twin(connected, "mod1")
print("module-twin:", module_twin.device_id, module_twin.module_id, flush=True)
offline = CloudToDeviceMethod(method_name="reboot", payload=None, response_timeout_in_seconds=5)
print("offline:", status_of(lambda: manager.invoke_device_method(created, offline)), flush=True)

query = manager.query_iot_hub(QuerySpecification(query="SELECT * FROM devices WHERE tags.building = '43'"))
print("query:", query.type, ",".join(t.device_id for t in query.items), flush=True)
service = manager.get_service_statistics()
registry = manager.get_device_registry_statistics()
print("statistics:", service.connected_device_count, registry.total_device_count, flush=True)

disabled = manager.update_device_with_sas(created, device.etag, None, None, "disabled")
print("disabled:", disabled.status, flush=True)
print("stale-device-etag:", status_of(lambda: manager.update_device_with_sas(created, device.etag, None, None, "enabled")), flush=True)
manager.delete_device(created)
print("deleted:", status_of(lambda: manager.get_device(created)), flush=True)

reader = IoTHubRegistryManager.from_connection_string(read_only)
print("read-only-get:", status_of(lambda: reader.get_device(connected)), flush=True)
print("read-only-create:", status_of(lambda: reader.create_device_with_sas("not-allowed", None, None, "enabled")), flush=True)
fields = dict(part.split("=", 1) for part in connection_string.split(";"))
fields["SharedAccessKey"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
wrong = IoTHubRegistryManager.from_connection_string(";".join(f"{k}={v}" for k, v in fields.items()))
print("wrong-key:", status_of(lambda: wrong.get_device(connected)), flush=True)
print("done", flush=True)
