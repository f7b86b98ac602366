"""DPS over AMQP with qpid-proton (Apache's AMQP 1.0 library), the way Azure's C and Node provisioning clients speak
it: SASL PLAIN as `{idScope}/registrations/{registrationId}` with the registration's SAS token, a receiver and a
sender on `amqps://{host}/{idScope}/registrations/{registrationId}` on one connection, a register request
(`iotdps-operation-type: iotdps-register`) and then status polls (`iotdps-get-operationstatus` with
`iotdps-operation-id`), each matched to its answer by correlation id.

usage: proton_dps.py HOST PORT ID_SCOPE REGISTRATION_ID SAS_TOKEN CA_FILE
Prints each answer's status and the final assignment.
"""
import json
import sys
import time
import uuid

from proton import Message, SSLDomain
from proton.utils import BlockingConnection

host, port, scope, registration, token, ca_file = sys.argv[1:7]
address = "amqps://%s/%s/registrations/%s" % (host, scope, registration)
ssl = SSLDomain(SSLDomain.MODE_CLIENT)
ssl.set_trusted_ca_db(ca_file)
ssl.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
connection = BlockingConnection(
    "amqps://%s:%s" % (host, port),
    ssl_domain=ssl,
    user="%s/registrations/%s" % (scope, registration),
    password=token,
    allowed_mechs="PLAIN",
    timeout=30,
)
receiver = connection.create_receiver(address)
sender = connection.create_sender(address)


def ask(operation, body, operation_id=None):
    correlation = str(uuid.uuid4())
    properties = {"iotdps-operation-type": operation}
    if operation_id:
        properties["iotdps-operation-id"] = operation_id
    else:
        properties["iotdps-forceRegistration"] = False
    message = Message(body=body, correlation_id=correlation, content_type="application/json", properties=properties)
    message.inferred = True  # the bytes go as a data section, as the SDKs send them
    sender.send(message)
    while True:
        answer = receiver.receive(timeout=30)
        receiver.accept()
        if str(answer.correlation_id) == correlation:
            body = answer.body
            if isinstance(body, memoryview):
                body = body.tobytes()
            return json.loads(body), answer.properties or {}


answer, properties = ask("iotdps-register", json.dumps({"registrationId": registration}).encode())
print("register:", answer.get("status"), "retry-after:", properties.get("retry-after"), flush=True)
while answer.get("status") == "assigning":
    time.sleep(float(properties.get("retry-after") or 2))
    answer, properties = ask("iotdps-get-operationstatus", b"", answer["operationId"])
    print("poll:", answer.get("status"), flush=True)
state = answer.get("registrationState", {})
print("assigned:", state.get("assignedHub"), state.get("deviceId"), flush=True)
connection.close()
