#!/usr/bin/env python3
"""The same registrations done the write-ups' way: for each device one `curl -X PUT …/register` with the SAS header,
then `curl -X GET …/operations/{id}` until assigned; one curl process per request, CONCURRENCY devices at a time.
Prints: curl    concurrency N: COUNT registrations in S s = R/s, client CPU X ms/registration (curl processes)
usage: dps_curl.py ENDPOINT SCOPE GROUPKEY CAFILE CONCURRENCY COUNT PREFIX"""
import base64, hashlib, hmac, json, resource, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

endpoint, scope, group_key, ca_file, concurrency, count, prefix = sys.argv[1:8]
concurrency, count = int(concurrency), int(count)

def sas(registration_id):
    key = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256).digest()
    sr = quote(f"{scope}/registrations/{registration_id}", safe="")
    se = str(int(time.time()) + 3600)
    sig = base64.b64encode(hmac.new(key, (sr + "\n" + se).encode(), hashlib.sha256).digest()).decode()
    return f"SharedAccessSignature sr={sr}&sig={quote(sig, safe='')}&se={se}&skn=registration"

def curl(args):
    out = subprocess.run(["curl", "-sS", "--cacert", ca_file, "-H", "Content-Type: application/json",
                          "-H", "Content-Encoding:  utf-8"] + args, capture_output=True, text=True, check=True).stdout
    return json.loads(out)

def register(index):
    rid = f"{prefix}-{index}"
    auth = ["-H", "Authorization: " + sas(rid)]
    base = f"https://{endpoint}/{scope}/registrations/{rid}"
    answer = curl(["-X", "PUT"] + auth + ["-d", json.dumps({"registrationId": rid}), base + "/register?api-version=2019-03-31"])
    while answer.get("status") == "assigning":
        answer = curl(["-X", "GET"] + auth + [base + f"/operations/{answer['operationId']}?api-version=2019-03-31"])
    return answer.get("status") == "assigned"

before = resource.getrusage(resource.RUSAGE_CHILDREN)
start = time.perf_counter()
with ThreadPoolExecutor(max_workers=concurrency) as pool:
    results = list(pool.map(register, range(count)))
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(f"curl    concurrency {concurrency:4d}: {count:5d} registrations in {elapsed:7.2f} s = {count / elapsed:7.1f}/s, "
      f"client CPU {cpu * 1000 / count:6.2f} ms/registration, {results.count(False)} failed")
