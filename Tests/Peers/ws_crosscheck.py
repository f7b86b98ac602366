#!/usr/bin/env python3
"""Cross-checks this SDK's WebSocket codec against wsproto, a sans-I/O RFC 6455 implementation nobody here wrote.

  ws_crosscheck.py parse ROLE          stdin: hex of frames; ROLE is who parses (server: expects masked frames).
                                       Prints one JSON object per frame: opcode, fin, payload (hex).
  ws_crosscheck.py frames ROLE         Prints hex of frames wsproto sends as ROLE (client frames are masked):
                                       binary "hello" in two fragments, ping "p", a 300-byte binary message, a
                                       70000-byte binary message, close 1000 "bye".
  ws_crosscheck.py accept PROTOCOL     stdin: hex of a client upgrade request. wsproto, as the server, accepts it
                                       choosing PROTOCOL; prints JSON: the path, the offered sub-protocols and the
                                       hex of the 101 answer.
  ws_crosscheck.py request PROTOCOLS   Prints the hex of a wsproto client's upgrade request for /$iothub/websocket
                                       offering the comma-separated PROTOCOLS, with the key of RFC 6455's example.
  ws_crosscheck.py connect PROTOCOLS   The same client reads the hex of the server's answer to that request from
                                       stdin and prints JSON: accepted, subprotocol.
"""
import json
import sys

import wsproto.handshake

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, RejectConnection
from wsproto.frame_protocol import CloseReason, FrameProtocol


def parse(role):
    protocol = FrameProtocol(client=(role == "client"), extensions=[])
    protocol.receive_bytes(bytes.fromhex(sys.stdin.read().strip()))
    for frame in protocol.received_frames():
        payload = frame.payload
        if isinstance(payload, tuple):  # close: (code, reason)
            code, reason = payload
            out = {"opcode": int(frame.opcode), "fin": frame.frame_finished, "code": int(code), "reason": reason}
        else:
            if isinstance(payload, str):
                payload = payload.encode()
            out = {"opcode": int(frame.opcode), "fin": frame.message_finished, "payload": bytes(payload).hex()}
        print(json.dumps(out))


def frames(role):
    protocol = FrameProtocol(client=(role == "client"), extensions=[])
    data = b""
    data += protocol.send_data(b"hel", fin=False)
    data += protocol.send_data(b"lo", fin=True)
    data += protocol.ping(b"p")
    data += protocol.send_data(bytes(range(256)) + bytes(44), fin=True)
    data += protocol.send_data(bytes(i % 251 for i in range(70000)), fin=True)
    data += protocol.close(CloseReason.NORMAL_CLOSURE, "bye")
    print(data.hex())


def accept(subprotocol):
    connection = WSConnection(ConnectionType.SERVER)
    connection.receive_data(bytes.fromhex(sys.stdin.read().strip()))
    for event in connection.events():
        if isinstance(event, Request):
            answer = connection.send(AcceptConnection(subprotocol=subprotocol))
            print(json.dumps({"path": event.target, "subprotocols": event.subprotocols, "answer": answer.hex()}))
            return
    print(json.dumps({"error": "no request"}))


def client(protocols):
    # The key of RFC 6455's example instead of a random one, so that a second run checks the answer to the first.
    wsproto.handshake.generate_nonce = lambda: b"dGhlIHNhbXBsZSBub25jZQ=="
    connection = WSConnection(ConnectionType.CLIENT)
    offered = [p for p in protocols.split(",") if p]
    request = connection.send(Request(host="localhost", target="/$iothub/websocket", subprotocols=offered))
    return connection, request


def request(protocols):
    print(client(protocols)[1].hex())


def connect(protocols):
    connection, _ = client(protocols)
    connection.receive_data(bytes.fromhex(sys.stdin.read().strip()))
    for event in connection.events():
        if isinstance(event, AcceptConnection):
            print(json.dumps({"accepted": True, "subprotocol": event.subprotocol}))
            return
        if isinstance(event, RejectConnection):
            print(json.dumps({"accepted": False, "status": event.status_code}))
            return
    print(json.dumps({"accepted": False}))


if __name__ == "__main__":
    command, argument = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
    {"parse": parse, "frames": frames, "accept": accept, "request": request, "connect": connect}[command](argument)
