"""A backend's receiver of feedback or file upload notifications written with uamqp (azure-iot-hub 2.7.0 has
neither): CBS put-token with a service SAS token as Azure's service SDKs sign it, then a receiver on
/messages/serviceBound/feedback (or /filenotifications) that completes each message and prints its records.

usage: uamqp_feedback.py HOST SHARED_ACCESS_KEY_NAME SHARED_ACCESS_KEY RECORDS [filenotifications]
HOST is the connection string's HostName (port 5671 is dialled; the CA comes from SSL_CERT_FILE).
Prints "record STATUS_CODE ORIGINAL_MESSAGE_ID DEVICE_ID" per feedback record, or
"file DEVICE_ID BLOB_NAME SIZE BLOB_URI" per file notification, and exits 0 once RECORDS arrived.
"""
import base64
import hashlib
import hmac
import json
import sys
import time
import urllib.parse

import uamqp
from azure.core.credentials import AccessToken

hostname, key_name, key, wanted = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
node = sys.argv[5] if len(sys.argv) > 5 else "feedback"


def get_token():
    expiry = int(time.time() + 3600)
    digest = hmac.HMAC(base64.b64decode(key), f"{hostname}\n{expiry}".encode(), hashlib.sha256).digest()
    signature = urllib.parse.quote(base64.b64encode(digest))
    return AccessToken(f"SharedAccessSignature sr={hostname}&sig={signature}&se={expiry}&skn={key_name}", expiry)


auth = uamqp.authentication.JWTTokenAuth(
    audience="https://" + hostname, uri="https://" + hostname, get_token=get_token,
    token_type=b"servicebus.windows.net:sastoken",
)
auth.update_token()
receiver = uamqp.ReceiveClient(
    "amqps://" + hostname + "/messages/serviceBound/" + node, auth=auth, timeout=30000, prefetch=10,
)
seen = 0
deadline = time.time() + 60
try:
    while seen < wanted and time.time() < deadline:
        for message in receiver.receive_message_batch(max_batch_size=10, timeout=5000):
            content_type = message.properties.content_type
            if isinstance(content_type, bytes):
                content_type = content_type.decode()
            print("content-type", content_type, flush=True)
            body = json.loads(b"".join(message.get_data()))
            for record in body if isinstance(body, list) else [body]:
                if node == "feedback":
                    print("record", record["statusCode"], record["originalMessageId"], record["deviceId"], flush=True)
                else:
                    print("file", record["deviceId"], record["blobName"], record["blobSizeInBytes"], record["blobUri"],
                          flush=True)
                seen += 1
            message.accept()
finally:
    receiver.close()
sys.exit(0 if seen >= wanted else 1)
