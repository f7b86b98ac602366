"""The SAS token generator of Azure's documentation, as a Python 3 script (the write-up's version was Python 2).

usage: sas_token.py URI BASE64_KEY [POLICY_NAME] [SECONDS]
Signs quote_plus(URI) + "\\n" + expiry with HMAC-SHA256 and prints `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]`.
"""
import base64
import hashlib
import hmac
import sys
import time
import urllib.parse


def sas_token(uri, key, policy=None, lifetime=3600):
    expiry = int(time.time() + lifetime)
    encoded_uri = urllib.parse.quote_plus(uri)
    to_sign = "%s\n%d" % (encoded_uri, expiry)
    digest = hmac.new(base64.b64decode(key), to_sign.encode("utf-8"), hashlib.sha256).digest()
    fields = {"sr": uri, "sig": base64.b64encode(digest), "se": str(expiry)}
    if policy:
        fields["skn"] = policy
    return "SharedAccessSignature " + urllib.parse.urlencode(fields)


if __name__ == "__main__":
    policy = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    lifetime = int(sys.argv[4]) if len(sys.argv) > 4 else 3600
    print(sas_token(sys.argv[1], sys.argv[2], policy, lifetime))
