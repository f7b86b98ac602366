#!/usr/bin/env python3
"""An AMQP 1.0 peer for the tests, on qpid-proton (an independent implementation), over TLS with SASL PLAIN checked
by cyrus-sasl against a sasldb.

- Every message received on a link the client opened as a sender is appended to RECEIVED (JSONL) with the
  authenticated user, the link's target address, body and every property.
- On links the client opens as a receiver, it sends the messages listed in C2D (a JSON file) and logs the client's
  disposition for each (accepted/rejected/released/modified).
- A link attached to an address containing "/refuse-link" is detached with amqp:unauthorized-access.
- It plays IoT Hub's twin and methods (../shared/reference/azure-iot-protocol.md 4.6-4.7): a request on ".../twin"
  is answered on the twin link the client receives on, with the request's correlation id and `status`/`version`
  annotations (GET: a twin document; PATCH /properties/reported: 204 and the next version; PUT on the desired
  notifications: 200, then a desired patch without a correlation id); once the client receives on
  ".../methods/devicebound", one call "reboot" goes out with a UUID correlation id, and the answer is logged.

usage: amqp_server.py PORT CERT KEY SASL_CONFIG_DIR RECEIVED.jsonl C2D.json
Prints "READY" once listening. PN_SASL_CONFIG_PATH must point at SASL_CONFIG_DIR before proton loads.
"""
import json, os, sys

port, cert, key, sasl_dir, received_path, c2d_path = sys.argv[1:7]
os.environ["PN_SASL_CONFIG_PATH"] = sasl_dir

import uuid

from proton import Condition, Message, SSLDomain, Terminus, int32, symbol
from proton.handlers import MessagingHandler
from proton.reactor import Container


logged = 0


def log(entry):
    global logged
    with open(received_path, "a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    # The test waits for this line (on stdout, which it reads as it arrives) instead of polling the file.
    logged += 1
    print(f"EVENT {logged}", flush=True)


def plain(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"binary": bytes(value).decode("utf-8", "replace")}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


class Server(MessagingHandler):
    def __init__(self):
        super().__init__(prefetch=0, auto_accept=False, auto_settle=True)
        self.c2d = json.load(open(c2d_path)) if os.path.exists(c2d_path) else []
        self.senders = {}  # address -> the link the peer sends on
        self.pending = {}  # address -> messages waiting for credit
        self.reported_version = 1

    def queue(self, address, message):
        self.pending.setdefault(address, []).append(message)
        self.flush(address)

    def flush(self, address):
        sender = self.senders.get(address)
        queue = self.pending.get(address, [])
        while sender is not None and sender.credit > 0 and queue:
            sender.send(queue.pop(0))

    def on_start(self, event):
        domain = SSLDomain(SSLDomain.MODE_SERVER)
        domain.set_credentials(cert, key, None)
        event.container.ssl.server = domain
        event.container.listen("amqps://127.0.0.1:%s" % port)
        print("READY", flush=True)

    def on_connection_bound(self, event):
        sasl = event.transport.sasl()
        sasl.allowed_mechs("PLAIN")

    def on_connection_opened(self, event):
        transport = event.connection.transport
        log({"ev": "connection_open", "user": transport.user, "hostname": event.connection.remote_hostname,
             "container": event.connection.remote_container,
             "properties": plain(event.connection.remote_properties or {})})

    def on_link_opening(self, event):
        link = event.link
        address = (link.remote_target.address if link.is_receiver else link.remote_source.address) or ""
        log({"ev": "link_attach", "name": link.name, "we": "receive" if link.is_receiver else "send", "address": address,
             "properties": plain(link.remote_properties or {}), "snd_settle_mode": link.remote_snd_settle_mode,
             "rcv_settle_mode": link.remote_rcv_settle_mode})
        if "/refuse-link" in address:
            link.refuse = True  # detached with an error once open (see on_link_opened)
        if link.is_receiver:
            link.target.address = address
            link.open()
            if not getattr(link, "refuse", False):
                link.flow(1000)
        else:
            link.source.address = address
            self.senders[address] = link

    def on_link_opened(self, event):
        if getattr(event.link, "refuse", False):
            event.link.condition = Condition("amqp:unauthorized-access", "this link is refused for the test")
            event.link.close()

    def on_sendable(self, event):
        sender = event.link
        address = sender.remote_source.address or ""
        if address.endswith("/twin"):
            self.flush(address)
            return
        if address.endswith("/methods/devicebound"):
            if not getattr(sender, "call_sent", False):
                sender.call_sent = True
                call = Message(body=b'{"delay":1}', correlation_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
                               properties={"IoThub-methodname": "reboot"}, inferred=True)
                sender.send(call)
                log({"ev": "method_sent", "name": "reboot"})
            return
        if getattr(sender, "c2d_sent", False):
            return
        sender.c2d_sent = True
        for item in self.c2d:
            message = Message(id=item.get("id"), body=item["body"].encode(), content_type=item.get("content_type"),
                              properties=item.get("properties"), inferred=True)
            delivery = sender.send(message)
            delivery.c2d_id = item.get("id")
            log({"ev": "c2d_sent", "id": item.get("id")})

    def on_accepted(self, event):
        log({"ev": "c2d_disposition", "id": getattr(event.delivery, "c2d_id", None), "outcome": "accepted"})

    def on_rejected(self, event):
        log({"ev": "c2d_disposition", "id": getattr(event.delivery, "c2d_id", None), "outcome": "rejected"})

    def on_released(self, event):
        outcome = "modified" if event.delivery.remote_state == event.delivery.MODIFIED else "released"
        log({"ev": "c2d_disposition", "id": getattr(event.delivery, "c2d_id", None), "outcome": outcome})

    def on_message(self, event):
        message = event.message
        log({"ev": "message", "user": event.connection.transport.user, "address": event.link.remote_target.address,
             "body": plain(message.body), "inferred": message.inferred, "id": message.id,
             "correlation_id": message.correlation_id, "user_id": plain(message.user_id), "to": message.address,
             "content_type": message.content_type, "content_encoding": message.content_encoding,
             "creation_time": message.creation_time, "properties": plain(message.properties or {}),
             "annotations": plain(message.annotations or {})})
        self.accept(event.delivery)
        if event.link.credit < 500:
            event.link.flow(1000)
        address = event.link.remote_target.address or ""
        if address.endswith("/twin"):
            self.answer_twin(address, message)

    def answer_twin(self, address, request):
        annotations = request.annotations or {}
        operation, resource = annotations.get("operation"), annotations.get("resource")
        answer = {symbol("status"): int32(400)}
        body = b" "
        if operation == "GET":
            answer = {symbol("status"): int32(200)}
            body = json.dumps({"desired": {"interval": 10, "$version": 4},
                               "reported": {"$version": self.reported_version}}).encode()
        elif operation == "PATCH" and resource == "/properties/reported":
            self.reported_version += 1
            answer = {symbol("status"): int32(204), symbol("version"): self.reported_version}
        elif operation in ("PUT", "DELETE") and resource == "/notifications/twin/properties/desired":
            answer = {symbol("status"): int32(200)}
        self.queue(address, Message(body=body, correlation_id=request.correlation_id, annotations=answer,
                                    inferred=True))
        if operation == "PUT":
            self.queue(address, Message(body=b'{"interval":30,"$version":5}', annotations={symbol("version"): 5},
                                        inferred=True))


Container(Server()).run()
