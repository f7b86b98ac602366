#!/usr/bin/env python3
"""A hostile MQTT 3.1.1 broker over TLS for the client's fault tests (standard library only).

Every CONNECT is accepted (CONNACK 0), then the broker misbehaves as told:
- suback-flood: sends SUBACKs for packet ids 1, 2, 3 … 65535, 1, … without pause for as long as the connection
  lives, and never acknowledges a PUBLISH.
- silent: answers each SUBSCRIBE with its SUBACK and nothing else: no PUBACK, no twin response, no PINGRESP.

It prints READY once listening, then one line per event: "CONNECT <n>" for the n-th connection, "PUBLISH" for each
PUBLISH received, "CLOSED <n>" when a connection ends.

usage: mqtt_hostile_broker.py PORT CERT KEY BEHAVIOUR
"""
import socket, ssl, sys, threading

port, cert, key, behaviour = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
lock = threading.Lock()
connections = 0


def say(line):
    with lock:
        print(line, flush=True)


def read_exact(conn, count):
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_packet(conn):
    first = read_exact(conn, 1)[0]
    length, shift = 0, 0
    while True:
        byte = read_exact(conn, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte & 0x80 == 0:
            break
    return first >> 4, read_exact(conn, length) if length else b""


def flood(conn, stop):
    packet_id = 0
    try:
        while not stop.is_set():
            batch = bytearray()
            for _ in range(1000):
                packet_id = packet_id % 65535 + 1
                batch += bytes([0x90, 0x03, packet_id >> 8, packet_id & 0xFF, 0x01])
            conn.sendall(batch)
    except (OSError, ssl.SSLError):
        pass


def serve(conn, number):
    stop = threading.Event()
    try:
        kind, _ = read_packet(conn)
        if kind != 1:
            return
        conn.sendall(bytes([0x20, 0x02, 0x00, 0x00]))
        say(f"CONNECT {number}")
        if behaviour == "suback-flood":
            threading.Thread(target=flood, args=(conn, stop), daemon=True).start()
        while True:
            kind, body = read_packet(conn)
            if kind == 8 and behaviour == "silent":
                filters, position = 0, 2
                while position < len(body):
                    length = (body[position] << 8) | body[position + 1]
                    position += 2 + length + 1
                    filters += 1
                conn.sendall(bytes([0x90, 2 + filters, body[0], body[1]] + [0x01] * filters))
                say(f"SUBSCRIBE {filters}")
            elif kind == 3:
                say("PUBLISH")
            elif kind == 14:
                break
    except (OSError, ssl.SSLError, ConnectionError):
        pass
    finally:
        stop.set()
        say(f"CLOSED {number}")
        try:
            conn.close()
        except OSError:
            pass


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(16)
print("READY", flush=True)
while True:
    raw, _ = listener.accept()
    try:
        conn = context.wrap_socket(raw, server_side=True)
    except (OSError, ssl.SSLError):
        raw.close()
        continue
    connections += 1
    threading.Thread(target=serve, args=(conn, connections), daemon=True).start()
