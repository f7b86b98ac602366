#!/usr/bin/env python3
"""qpid-proton's Python client sending COUNT 256-byte messages over TLS + SASL PLAIN, waiting until every one is
settled as accepted. usage: amqp_proton_client.py PORT CAFILE COUNT USER TOKEN"""
import sys, time
from proton import Message, SSLDomain
from proton.handlers import MessagingHandler
from proton.reactor import Container

port, ca_file, count, user, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]


class Sender(MessagingHandler):
    def __init__(self):
        super().__init__()
        self.sent = self.accepted = 0
        self.start = None

    def on_start(self, event):
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        domain.set_trusted_ca_db(ca_file)
        domain.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
        self.start = time.perf_counter()
        connection = event.container.connect("amqps://localhost:%s" % port, user=user, password=token, ssl_domain=domain,
                                             allowed_mechs="PLAIN")
        event.container.create_sender(connection, "/devices/proton/messages/events")

    def on_sendable(self, event):
        while event.sender.credit and self.sent < count:
            event.sender.send(Message(body=b"x" * 256))
            self.sent += 1

    def on_accepted(self, event):
        self.accepted += 1
        if self.accepted == count:
            elapsed = time.perf_counter() - self.start
            print(f"qpid-proton (Python): {count} settled sends x 256 B in {elapsed:.3f} s = {count / elapsed:.0f} msg/s (includes connect+TLS+SASL)")
            event.connection.close()


Container(Sender()).run()
