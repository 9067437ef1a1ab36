#!/usr/bin/env python3
# Mints JWTs for JWTTests with PyJWT (an implementation independent of the gateway's).
# stdin: a JSON list of {"key": PEM path, "alg", "kid" (or null), "claims": {...},
#        "bind": certificate PEM path (optional: cnf."x5t#S256" of its DER)}; stdout: the tokens, one a line.
import sys, json, hashlib, base64, time
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

out = []
for spec in json.load(sys.stdin):
    claims = dict(spec["claims"])
    for k in ("exp", "nbf", "iat"):          # relative times: "+3600", "-100"
        if isinstance(claims.get(k), str):
            claims[k] = int(time.time()) + int(claims[k])
    if spec.get("bind"):
        cert = x509.load_pem_x509_certificate(open(spec["bind"], "rb").read())
        der = cert.public_bytes(serialization.Encoding.DER)
        claims["cnf"] = {"x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()}
    key = spec["key"]
    if not key.startswith("secret:"):
        key = open(key, "rb").read()
    else:
        key = key[len("secret:"):]
    headers = {"kid": spec["kid"]} if spec.get("kid") else {}
    out.append(jwt.encode(claims, key, algorithm=spec["alg"], headers=headers))
print("\n".join(out))
