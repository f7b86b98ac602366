#!/usr/bin/env python3
"""The same SAS work with Python's stdlib only: hmac/hashlib, base64, urllib.parse.quote. Key decoded once, as a
Python credential would keep it. Prints: python stdlib <n> tokens in <s> s = <rate> tokens/s"""
import base64, hashlib, hmac, sys, time
from urllib.parse import quote

KEY = base64.b64decode("gPD2SOUYSOMXygVZA+pupNvWckqaS3Qnu+BUBbw7TbIZU7y2UZ5ksp4uMJfdV+nTIBayN+fZIZco4tS7oeVR/A==")
URI = "0ne00057505/registrations/dps-sym-key-test01"

def token(expiry):
    sr = quote(URI, safe="")
    sig = base64.b64encode(hmac.new(KEY, (sr + "\n" + str(expiry)).encode(), hashlib.sha256).digest()).decode()
    return "SharedAccessSignature sr=" + sr + "&sig=" + quote(sig, safe="") + "&se=" + str(expiry) + "&skn=registration"

assert token(1568718116).endswith("sig=yIDnZMFwLvx4rLZXY7Ljtxu2ylGsgkX%2FCYaLcivzim0%3D&se=1568718116&skn=registration")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
start = time.perf_counter()
total = 0
for i in range(n):
    total += len(token(1700000000 + i))
elapsed = time.perf_counter() - start
print(f"python stdlib {n} tokens in {elapsed:.3f} s = {int(n / elapsed)} tokens/s")
