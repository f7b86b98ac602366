#!/usr/bin/env python3
"""Captures the bytes qpid-proton's client and server exchange (SASL ANONYMOUS, open, begin, a sender link with one
message carrying properties and application properties, a receiver link getting one message, detach, end, close),
through a recording TCP proxy between them. Prints one JSON object: {"client": HEX, "server": HEX}, each direction's
whole byte stream, for the Swift codec to decode and re-encode.

usage: capture_amqp_frames.py
"""
import json
import socket
import sys
import threading

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container
from proton.utils import BlockingConnection


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server(MessagingHandler):
    def __init__(self, url, ready):
        super().__init__()
        self.url = url
        self.ready = ready

    def on_start(self, event):
        self.acceptor = event.container.listen(self.url)
        self.ready.set()

    def on_link_opening(self, event):
        link = event.link
        if link.is_receiver:
            link.target.address = link.remote_target.address
        else:
            link.source.address = link.remote_source.address

    def on_sendable(self, event):
        if event.sender.credit and not getattr(event.sender, "sent_once", False):
            event.sender.sent_once = True
            message = Message(body=b"reboot", id="c2d-1", properties={"priority": "low"})
            message.to = "/devices/dev1/messages/deviceBound"
            event.sender.send(message)

    def on_message(self, event):
        pass


def pump(source, destination, record):
    while True:
        try:
            chunk = source.recv(65536)
        except OSError:
            break
        if not chunk:
            break
        record.extend(chunk)
        try:
            destination.sendall(chunk)
        except OSError:
            break
    for s in (source, destination):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    server_port, proxy_port = free_port(), free_port()
    ready = threading.Event()
    container = Container(Server("amqp://127.0.0.1:%d" % server_port, ready))
    threading.Thread(target=container.run, daemon=True).start()
    ready.wait(10)

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", proxy_port))
    listener.listen(1)
    client_bytes, server_bytes = bytearray(), bytearray()
    pumps = []

    def accept():
        downstream, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", server_port))
        for args in ((downstream, upstream, client_bytes), (upstream, downstream, server_bytes)):
            thread = threading.Thread(target=pump, args=args, daemon=True)
            thread.start()
            pumps.append(thread)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()

    connection = BlockingConnection("amqp://127.0.0.1:%d" % proxy_port, allowed_mechs="ANONYMOUS", timeout=10)
    sender = connection.create_sender("/devices/dev1/messages/events")
    message = Message(body=b'{"temperature":21.5}', id="msg-1", correlation_id="corr-1",
                      properties={"alert": "true", "level": 3})
    message.content_type = "application/json"
    message.content_encoding = "utf-8"
    sender.send(message)
    receiver = connection.create_receiver("/devices/dev1/messages/devicebound", credit=1)
    receiver.receive(timeout=10)
    receiver.accept()
    sender.close()
    receiver.close()
    connection.close()
    acceptor.join(5)
    for thread in pumps:
        thread.join(5)
    json.dump({"client": client_bytes.hex(), "server": server_bytes.hex()}, sys.stdout)
    container.stop()


main()
