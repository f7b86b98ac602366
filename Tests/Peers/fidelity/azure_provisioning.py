"""Azure's Python provisioning client (azure-iot-device 2.14.0's ProvisioningDeviceClient, which speaks only MQTT)
against the emulator's DPS MQTT endpoint: register with a symmetric key or an X.509 certificate and print the
assignment.

usage: azure_provisioning.py HOST PORT ID_SCOPE REGISTRATION_ID CA_FILE symmetric KEY [websockets]
       azure_provisioning.py HOST PORT ID_SCOPE REGISTRATION_ID CA_FILE x509 CERT_FILE KEY_FILE [websockets]
The SDK always dials port 8883 (443 with websockets), which a test cannot always listen on, so only the port number
paho is handed is changed to PORT; the topics, user name and everything on the wire stay the SDK's.
Prints "assigned HUB DEVICE_ID" or "status STATUS" and exits 0 when assigned.
"""
import sys

import paho.mqtt.client as paho
from azure.iot.device import ProvisioningDeviceClient, X509

host, test_port, id_scope, registration_id, ca_file, kind = sys.argv[1:7]
test_port = int(test_port)
dial = paho.Client.connect


def connect_to_test_port(self, host, port=1883, *args, **kwargs):
    return dial(self, host, test_port if port in (443, 8883) else port, *args, **kwargs)


paho.Client.connect = connect_to_test_port
with open(ca_file) as handle:
    ca = handle.read()
if kind == "symmetric":
    key = sys.argv[7]
    websockets = len(sys.argv) > 8 and sys.argv[8] == "websockets"
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=host, registration_id=registration_id, id_scope=id_scope, symmetric_key=key,
        server_verification_cert=ca, websockets=websockets,
    )
else:
    cert_file, key_file = sys.argv[7:9]
    websockets = len(sys.argv) > 9 and sys.argv[9] == "websockets"
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=host, registration_id=registration_id, id_scope=id_scope,
        x509=X509(cert_file=cert_file, key_file=key_file), server_verification_cert=ca, websockets=websockets,
    )
result = client.register()
if result.status == "assigned":
    print("assigned", result.registration_state.assigned_hub, result.registration_state.device_id, flush=True)
    sys.exit(0)
print("status", result.status, flush=True)
sys.exit(1)
