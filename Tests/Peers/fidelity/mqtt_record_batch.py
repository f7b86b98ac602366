"""A burst of QoS 1 PUBLISHes, each in a TLS record of its own but all in one TCP write, then a count of the TLS
records the PUBACKs come back in. Python's ssl module with memory BIOs, so that the records are made first and sent
together, and the records coming back can be counted before they are decrypted.

usage: mqtt_record_batch.py HOST PORT CA_FILE CLIENT_ID USERNAME PASSWORD COUNT
Prints "pubacks N in R records" and the records' sizes, and exits 0, or exits 1 with what went wrong.
"""
import socket
import ssl
import struct
import sys

host, port, ca_file, client_id, username, password, count = sys.argv[1:8]
port, count = int(port), int(count)


def remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def packet(first, body):
    return bytes([first]) + remaining_length(len(body)) + body


records, pubacks, sizes = 0, 0, []
context = ssl.create_default_context(cafile=ca_file)
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
tls = context.wrap_bio(incoming, outgoing, server_hostname=host)
sock = socket.create_connection((host, port), timeout=30)
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def flush():
    data = outgoing.read()
    if data:
        sock.sendall(data)


def pump():
    try:
        data = sock.recv(65536)
    except TimeoutError:
        sys.exit(f"no answer within 30 s; so far {pubacks} PUBACKs in {records} records {sizes}")
    if not data:
        sys.exit("the server closed the connection")
    incoming.write(data)
    return data


while True:
    try:
        tls.do_handshake()
        break
    except ssl.SSLWantReadError:
        flush()
        pump()
flush()

connect = utf8("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 60) + utf8(client_id) + utf8(username) + utf8(password)
tls.write(packet(0x10, connect))
flush()
plain = bytearray()


def decrypt():
    """Everything the records received so far hold: one read takes one record's plaintext."""
    global plain
    while True:
        try:
            plain += tls.read(65536)
        except ssl.SSLWantReadError:
            return


while len(plain) < 4:
    pump()
    decrypt()
if plain[0] != 0x20 or plain[3] != 0:
    sys.exit(f"CONNACK refused: {bytes(plain[:4]).hex()}")
del plain[:4]

# The burst: one record per PUBLISH (one tls.write each), all of them in one sendall.
topic = f"devices/{client_id}/messages/events/"
for packet_id in range(1, count + 1):
    tls.write(packet(0x32, utf8(topic) + struct.pack(">H", packet_id) + b"x" * 64))
flush()

# Counts the application-data records on the wire until every PUBACK is in.
records, wire, pubacks, sizes = 0, bytearray(), 0, []
while pubacks < count:
    wire += pump()
    while len(wire) >= 5 and len(wire) >= 5 + struct.unpack(">H", wire[3:5])[0]:
        size = 5 + struct.unpack(">H", wire[3:5])[0]
        if wire[0] == 0x17:
            records += 1
            sizes.append(size)
        del wire[:size]
    decrypt()
    while len(plain) >= 4 and plain[0] == 0x40:
        pubacks += 1
        del plain[:4]
    if plain and plain[0] != 0x40:
        sys.exit(f"not a PUBACK: {bytes(plain[:8]).hex()}")
print(f"pubacks {pubacks} in {records} records", sizes)
