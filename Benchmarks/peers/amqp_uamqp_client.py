#!/usr/bin/env python3
"""uamqp (the library of the raw-AMQP write-up) sending COUNT 256-byte messages over TLS + SASL PLAIN and waiting
until every one is settled. usage: amqp_uamqp_client.py PORT CAFILE COUNT USER TOKEN DEVICE"""
import sys
import time

import uamqp
from uamqp import authentication

port, ca_file, count, user, token, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
start = time.perf_counter()
auth = authentication.SASLPlain("localhost", user, token, port=int(port), verify=ca_file)
client = uamqp.SendClient("amqps://localhost:%s/devices/%s/messages/events" % (port, device), auth=auth)
for _ in range(count):
    client.queue_message(uamqp.Message(b"x" * 256))
results = client.send_all_messages(close_on_done=True)
elapsed = time.perf_counter() - start
settled = sum(1 for result in results if result == uamqp.constants.MessageState.SendComplete)
print(f"uamqp 1.6.11: {settled}/{count} settled sends x 256 B in {elapsed:.3f} s = {count / elapsed:.0f} msg/s (includes connect+TLS+SASL)")
