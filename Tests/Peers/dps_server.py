#!/usr/bin/env python3
"""A local Device Provisioning Service over HTTPS for the tests (Python stdlib only).

It really checks what DPS checks: SAS tokens in `Authorization` (HMAC-SHA256 with the individual enrollment key, or
with the key derived from a group key and the registration id; `sr`, `se`, `skn=registration`), and TLS client
certificates that chain to the enrolled CA with CN = registration id. It also checks the request shape (method,
path, api-version, JSON body whose registrationId matches the path, Content-Type) and answers like the service:
202 `assigning` with `Retry-After`, then `assigned`, `failed` or `disabled`; 401/404/429/500 and malformed JSON on
demand, any `Retry-After` text, and a 2 GB body (`hugeBody`). Every request is appended to a JSONL log for the tests to read.

usage: dps_server.py CONFIG.json LOG.jsonl   (prints "READY <port>" once listening on 127.0.0.1)
"""
import base64, hashlib, hmac, json, ssl, sys, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

CONFIG = json.load(open(sys.argv[1]))
LOG_PATH = sys.argv[2]
LOCK = threading.Lock()
OPERATIONS = {}       # operationId -> {"registrationId", "polls", "behavior", "payload", "attestation"}
REQUEST_COUNTS = {}   # (registrationId, kind) -> count, for throttling


def log(entry):
    with LOCK, open(LOG_PATH, "a") as f:
        f.write(json.dumps(entry) + "\n")


def behavior_for(registration_id):
    default = {"assigning": 1, "retryAfter": 1, "final": "assigned"}
    default.update(CONFIG.get("defaultBehavior", {}))
    default.update(CONFIG.get("behaviors", {}).get(registration_id, {}))
    return default


def derived_key(group_key_b64, registration_id):
    return hmac.new(base64.b64decode(group_key_b64), registration_id.encode(), hashlib.sha256).digest()


def check_sas(header, scope, registration_id):
    """Returns (ok, why, enrollment) for an Authorization header."""
    if not header.startswith("SharedAccessSignature "):
        return False, "no SharedAccessSignature", None
    fields = {}
    for part in header[len("SharedAccessSignature "):].split("&"):
        if "=" not in part:
            return False, "malformed field", None
        k, v = part.split("=", 1)
        if k in fields:
            return False, "duplicate field", None
        fields[k] = v
    if set(fields) - {"sr", "sig", "se", "skn"} or not {"sr", "sig", "se"} <= set(fields):
        return False, "wrong fields", None
    expected_sr = quote(f"{scope}/registrations/{registration_id}", safe="")
    if unquote(fields["sr"]).lower() != unquote(expected_sr).lower():
        return False, "sr does not match the registration", None
    if fields.get("skn") != "registration":
        return False, "skn must be 'registration'", None
    if int(fields["se"]) <= time.time():
        return False, "token expired", None
    message = (fields["sr"] + "\n" + fields["se"]).encode()
    presented = base64.b64decode(unquote(fields["sig"]))
    individual = CONFIG.get("individual", {}).get(registration_id)
    if individual and hmac.compare_digest(hmac.new(base64.b64decode(individual), message, hashlib.sha256).digest(), presented):
        return True, "ok", {"kind": "individual"}
    for group in CONFIG.get("groups", []):
        if hmac.compare_digest(hmac.new(derived_key(group["key"], registration_id), message, hashlib.sha256).digest(), presented):
            return True, "ok", {"kind": "group", "groupId": group["groupId"]}
    return False, "signature does not match any enrollment key", None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        # The TLS handshake runs here, on the request's own thread, so that many clients can connect at once.
        self.request.settimeout(60)
        self.request.do_handshake()
        super().setup()

    def log_message(self, *args):
        pass

    def answer(self, status, body, headers=None, raw=None):
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, error_code, message):
        self.answer(status, {"errorCode": error_code, "trackingId": str(uuid.uuid4()), "message": message,
                             "timestampUtc": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())})

    def do_PUT(self): self.handle_dps("PUT")
    def do_GET(self): self.handle_dps("GET")
    def do_POST(self): self.handle_dps("POST")

    def handle_dps(self, method):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        cert = self.connection.getpeercert() or {}
        subject = dict(x[0] for x in cert.get("subject", ())) if cert else {}
        parts = [unquote(p) for p in url.path.split("/") if p]
        entry = {"method": method, "path": self.path, "headers": dict(self.headers.items()),
                 "body": raw_body.decode("utf-8", "replace"), "clientCN": subject.get("commonName"),
                 "tls": self.connection.version(), "time": time.time()}

        # Shape: /{scope}/registrations/{id}/register | /operations/{op} | (POST) /{scope}/registrations/{id}
        if len(parts) < 3 or parts[1] != "registrations" or "api-version" not in query:
            entry["outcome"] = "400 shape"
            log(entry)
            return self.error(400, 400001, "bad request path or missing api-version")
        scope, registration_id = parts[0], parts[2]
        if scope != CONFIG["idScope"]:
            entry["outcome"] = "404 scope"
            log(entry)
            return self.error(404, 404201, "unknown ID scope")

        # Authentication: SAS header, else a client certificate with CN = registration id.
        auth = self.headers.get("Authorization")
        if auth:
            ok, why, enrollment = check_sas(auth, scope, registration_id)
        elif subject:
            ok = subject.get("commonName") == registration_id
            why = "ok" if ok else "certificate CN is not the registration id"
            enrollment = {"kind": "x509", "subject": subject.get("commonName")}
        else:
            ok, why, enrollment = False, "no credentials", None
        entry["auth"] = why
        if not ok:
            entry["outcome"] = "401"
            log(entry)
            return self.error(401, 401002, "Unauthorized: " + why)

        behavior = behavior_for(registration_id)
        key = (registration_id, method)
        with LOCK:
            REQUEST_COUNTS[key] = REQUEST_COUNTS.get(key, 0) + 1
            count = REQUEST_COUNTS[key]
        if count <= behavior.get("throttle" + method, 0):
            entry["outcome"] = "429"
            log(entry)
            return self.answer(429, {"errorCode": 429001, "trackingId": "t", "message": "throttled"}, {"Retry-After": "1"})
        if behavior.get("status500"):
            entry["outcome"] = "500"
            log(entry)
            return self.error(500, 500000, "internal error")
        if behavior.get("deepBody"):
            entry["outcome"] = "deep body"
            log(entry)
            return self.answer(200, None, raw=b"[" * 100000 + b"]" * 100000)
        if behavior.get("hugeBody"):
            # Announces 2 GB and streams until the client gives up.
            entry["outcome"] = "huge body"
            log(entry)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(2 << 30))
            self.end_headers()
            chunk = b"[" + b"1," * 32767
            try:
                for _ in range((2 << 30) // len(chunk)):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                pass
            return
        if behavior.get("malformed"):
            entry["outcome"] = "malformed"
            log(entry)
            return self.answer(200, None, raw=b'{"operationId": "4.x", "status": ')

        if method == "PUT" and len(parts) == 4 and parts[3] == "register":
            if "application/json" not in (self.headers.get("Content-Type") or ""):
                entry["outcome"] = "400 content-type"
                log(entry)
                return self.error(400, 400004, "Content-Type must be application/json")
            try:
                body = json.loads(raw_body or b"{}")
            except ValueError:
                entry["outcome"] = "400 body"
                log(entry)
                return self.error(400, 400004, "body is not JSON")
            if body.get("registrationId") != registration_id:
                entry["outcome"] = "400 registrationId"
                log(entry)
                return self.error(400, 400004, "registrationId in the body does not match the path")
            operation_id = "4.%016x.%s" % (int(time.time() * 1000), uuid.uuid4())
            with LOCK:
                OPERATIONS[operation_id] = {"registrationId": registration_id, "polls": 0, "behavior": behavior,
                                            "payload": body.get("payload"), "enrollment": enrollment}
            entry["outcome"] = "202"
            log(entry)
            return self.answer(202, {"operationId": operation_id, "status": "assigning"}, self.retry_headers(behavior))

        if method == "GET" and len(parts) == 5 and parts[3] == "operations":
            with LOCK:
                operation = OPERATIONS.get(parts[4])
                if operation and operation["registrationId"] == registration_id:
                    operation["polls"] += 1
            if not operation or operation["registrationId"] != registration_id:
                entry["outcome"] = "404 operation"
                log(entry)
                return self.error(404, 404202, "unknown operation")
            if operation["polls"] < behavior["assigning"]:
                entry["outcome"] = "202 poll"
                log(entry)
                return self.answer(202, {"operationId": parts[4], "status": "assigning"}, self.retry_headers(behavior))
            entry["outcome"] = behavior["final"]
            log(entry)
            return self.answer(200, {"operationId": parts[4], "status": behavior["final"],
                                     "registrationState": self.state(registration_id, operation, behavior)})

        if method == "POST" and len(parts) == 3:
            entry["outcome"] = "status"
            log(entry)
            return self.answer(200, self.state(registration_id, {"payload": None, "enrollment": enrollment}, behavior))

        entry["outcome"] = "404 route"
        log(entry)
        return self.error(404, 404000, "no such route")

    @staticmethod
    def retry_headers(behavior):
        return {"Retry-After": str(behavior["retryAfter"])} if behavior.get("retryAfter") is not None else {}

    @staticmethod
    def state(registration_id, operation, behavior):
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        state = {"registrationId": registration_id, "createdDateTimeUtc": now, "lastUpdatedDateTimeUtc": now,
                 "status": behavior["final"], "etag": "\"0000-0000\""}
        if behavior["final"] == "assigned":
            state.update({"assignedHub": CONFIG["hub"], "deviceId": registration_id, "substatus": "initialAssignment"})
        elif behavior["final"] == "failed":
            state.update({"errorCode": behavior.get("errorCode", 400209), "errorMessage": behavior.get("errorMessage", "no hub")})
        enrollment = operation.get("enrollment") or {}
        if enrollment.get("kind") == "group":
            state["symmetricKey"] = {"enrollmentGroupId": enrollment["groupId"]}
        elif enrollment.get("kind") == "x509":
            state["x509"] = {"certificateInfo": {"subjectName": "CN=" + (enrollment.get("subject") or "")}}
        if operation.get("payload") is not None:
            state["payload"] = {"echo": operation["payload"]}
        return state


class Server(ThreadingHTTPServer):
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # a client that gives up mid-handshake is not the server's problem


def main():
    server = Server(("127.0.0.1", CONFIG.get("port", 0)), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(CONFIG["serverCert"], CONFIG["serverKey"])
    context.load_verify_locations(CONFIG["clientCA"])
    context.verify_mode = ssl.CERT_OPTIONAL
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    print("READY %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
