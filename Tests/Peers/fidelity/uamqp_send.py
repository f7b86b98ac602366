"""Sends telemetry with uamqp the way the raw-AMQP write-up does, in two forms:

  plain: credentials in the URL (`amqps://{device}@sas.{hub}:{token}@{host}/devices/{device}/messages/events`),
         which makes uamqp use SASL PLAIN; port 5671, CA from SSL_CERT_FILE like any OpenSSL client.
  cbs:   SASTokenAuth, which makes uamqp open SASL ANONYMOUS and put the token to `$cbs` (token type given).
  sasl:  SASL PLAIN through uamqp's SASLPlain object, for a peer on another port (the last argument).
  ws:    the same over WebSockets (`TransportType.AmqpOverWebsocket`: uamqp's path `/$servicebus/websocket/`,
         sub-protocol `AMQPWSB10`) on the given port.

usage: uamqp_send.py plain HOST DEVICE_ID HUB_HOST SAS_TOKEN CA_FILE [COUNT]
       uamqp_send.py cbs HOST DEVICE_ID HUB_HOST SAS_TOKEN CA_FILE [TOKEN_TYPE]
       uamqp_send.py sasl HOST DEVICE_ID HUB_HOST SAS_TOKEN CA_FILE PORT
       uamqp_send.py ws HOST DEVICE_ID HUB_HOST SAS_TOKEN CA_FILE PORT
COUNT (default 1) queues the message that many times: uamqp then sends as fast as the hub's link credit allows.
Prints the send result per message.
"""
import sys
import time
import urllib.parse

import uamqp
from uamqp import authentication

mode, host, device_id, hub_host, token, ca_file = sys.argv[1:7]
token_type = sys.argv[7] if len(sys.argv) > 7 and mode == "cbs" else "servicebus.windows.net:sastoken"
hub_name = hub_host.split(".")[0]
count = int(sys.argv[7]) if len(sys.argv) > 7 and mode == "plain" else 1

def message():
    # A new object per send: uamqp sends a message object once, however often it is queued.
    return uamqp.Message(
        b'{"temperature": 21.5}',
        properties=uamqp.message.MessageProperties(message_id="uamqp-1", content_type="application/json", content_encoding="utf-8"),
        application_properties={"source": "uamqp", "level": 3},
    )

if mode == "plain":
    username = urllib.parse.quote_plus("%s@sas.%s" % (device_id, hub_name))
    password = urllib.parse.quote_plus(token)
    uri = "amqps://%s:%s@%s/devices/%s/messages/events" % (username, password, host, device_id)
    client = uamqp.SendClient(uri, debug=False)
elif mode in ("sasl", "ws"):
    port = int(sys.argv[7])
    uri = "amqps://%s:%d/devices/%s/messages/events" % (host, port, device_id)
    transport = uamqp.TransportType.AmqpOverWebsocket if mode == "ws" else uamqp.TransportType.Amqp
    auth = authentication.SASLPlain(
        host, "%s@sas.%s" % (device_id, hub_name), token, port=port, verify=ca_file, transport_type=transport
    )
    client = uamqp.SendClient(uri, auth=auth, debug=False)
else:
    uri = "amqps://%s/devices/%s/messages/events" % (host, device_id)
    auth = authentication.SASTokenAuth(
        audience="%s/devices/%s" % (hub_host, device_id), uri=uri, token=token, expires_at=time.time() + 3600,
        verify=ca_file, token_type=token_type.encode(),
    )
    client = uamqp.SendClient(uri, auth=auth, debug=False)

for _ in range(count):
    client.queue_message(message())
results = client.send_all_messages(close_on_done=True)
print("results:", len(results), "sent,", sum(1 for result in results if result == uamqp.constants.MessageState.SendComplete), "complete")
sys.exit(0 if all(result == uamqp.constants.MessageState.SendComplete for result in results) else 1)
