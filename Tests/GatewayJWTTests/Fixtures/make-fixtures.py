#!/usr/bin/env python3
# Makes the JWT test fixtures with an implementation independent of the gateway's: PyJWT on
# `cryptography`. Run once; the output is committed (keys under Tests/ only):
#   pip install pyjwt cryptography && python3 make-fixtures.py
# keys/*.pem (private, for minting), jwks.json (the public set), tokens.json (name -> token),
# bad-*.json (key sets the loader must refuse or skip).
import json, os, base64, hashlib
import jwt
from jwt.algorithms import RSAAlgorithm, ECAlgorithm, OKPAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519

here = os.path.dirname(os.path.abspath(__file__))
os.makedirs(os.path.join(here, "keys"), exist_ok=True)

def save(name, key):
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    open(os.path.join(here, "keys", name + ".pem"), "wb").write(pem)

keys = {
    "rsa1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ec1": ec.generate_private_key(ec.SECP256R1()),
    "ec384": ec.generate_private_key(ec.SECP384R1()),
    "ed1": ed25519.Ed25519PrivateKey.generate(),
    "other": ec.generate_private_key(ec.SECP256R1()),   # not in the set: a forger's key
}
for k, v in keys.items(): save(k, v)

def jwk(kid, key):
    pub = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey): d = json.loads(RSAAlgorithm.to_jwk(pub))
    elif isinstance(key, ec.EllipticCurvePrivateKey): d = json.loads(ECAlgorithm.to_jwk(pub))
    else: d = json.loads(OKPAlgorithm.to_jwk(pub))
    d["kid"] = kid; d["use"] = "sig"
    return d

jwks = {"keys": [jwk(k, keys[k]) for k in ["rsa1", "ec1", "ec384", "ed1"]]}
open(os.path.join(here, "jwks.json"), "w").write(json.dumps(jwks, indent=1) + "\n")

# Sets the loader judges: a weak RSA key, a symmetric key, a malformed EC key, a P-256 key
# that `algorithms RS256` cannot use (skipped with a warning).
weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
open(os.path.join(here, "bad-weak.json"), "w").write(json.dumps({"keys": [jwk("weak1", weak)]}) + "\n")
open(os.path.join(here, "bad-oct.json"), "w").write(json.dumps({"keys": [{"kty": "oct", "kid": "s1", "k": "c2VjcmV0"}]}) + "\n")
broken = jwk("broken1", keys["ec1"]); broken["x"] = "AAAA"
open(os.path.join(here, "bad-malformed.json"), "w").write(json.dumps({"keys": [broken]}) + "\n")

NOW = 1_800_000_000          # the verifier's clock in the tests
FAR = 4_102_444_800          # 2100-01-01: fixed, far in the future
CERT_SHA256 = bytes(range(32))   # the tests' "client certificate" thumbprint
x5t = base64.urlsafe_b64encode(CERT_SHA256).rstrip(b"=").decode()

def claims(**over):
    c = {"iss": "https://login.example.test/", "aud": "api://orders", "sub": "alice", "exp": FAR, "iat": NOW - 10,
         "role": "admin", "level": 3, "staff": True, "groups": ["a"]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}

def mint(key, alg, kid="default", **over):
    headers = {} if kid is None else {"kid": {"RS256": "rsa1", "PS256": "rsa1", "ES256": "ec1", "ES384": "ec384", "EdDSA": "ed1"}[alg] if kid == "default" else kid}
    return jwt.encode(claims(**over), keys[key], algorithm=alg, headers=headers)

t = {}
t["valid-rs256"] = mint("rsa1", "RS256")
t["valid-ps256"] = mint("rsa1", "PS256")
t["valid-es256"] = mint("ec1", "ES256")
t["valid-es384"] = mint("ec384", "ES384")
t["valid-eddsa"] = mint("ed1", "EdDSA")
t["valid-nokid"] = mint("ec1", "ES256", kid=None)
t["valid-aud-array"] = mint("ec1", "ES256", aud=["api://other", "api://orders"])
t["valid-bound"] = mint("ec1", "ES256", cnf={"x5t#S256": x5t})
t["valid-nbf-in-skew"] = mint("ec1", "ES256", nbf=NOW + 30)
t["expired"] = mint("ec1", "ES256", exp=NOW - 100)
t["expired-in-skew"] = mint("ec1", "ES256", exp=NOW - 30)     # valid: within 60 s
t["not-yet-valid"] = mint("ec1", "ES256", nbf=NOW + 3600)
t["iat-future"] = mint("ec1", "ES256", iat=NOW + 3600)
t["no-exp"] = mint("ec1", "ES256", exp=None)
t["wrong-issuer"] = mint("ec1", "ES256", iss="https://evil.example.test/")
t["no-issuer"] = mint("ec1", "ES256", iss=None)
t["wrong-audience"] = mint("ec1", "ES256", aud="api://billing")
t["wrong-audience-array"] = mint("ec1", "ES256", aud=["api://billing"])
t["unknown-kid"] = mint("ec1", "ES256", kid="nope")
t["forged"] = mint("other", "ES256", kid="ec1")
t["forged-nokid"] = mint("other", "ES256", kid=None)
t["hs256"] = jwt.encode(claims(), "secret-secret-secret-secret-32by", algorithm="HS256", headers={"kid": "ec1"})
t["alg-none"] = jwt.encode(claims(), None, algorithm="none")
t["alg-key-mismatch"] = mint("rsa1", "RS256", kid="ec1")      # RS256 naming an EC key
t["bound-other-cert"] = mint("ec1", "ES256", cnf={"x5t#S256": "A" * 43})
h, p, s = t["valid-es256"].split(".")
t["padded"] = h + "==." + p + "." + s
t["bad-chars"] = h + "." + p + "+/." + s
t["jwe-shaped"] = h + "." + p + "." + s + ".AAAA.BBBB"
t["tampered-payload"] = h + "." + base64.urlsafe_b64encode(json.dumps(claims(sub="mallory")).encode()).rstrip(b"=").decode() + "." + s
t["two-parts"] = h + "." + p
t["header-not-json"] = base64.urlsafe_b64encode(b"not json").rstrip(b"=").decode() + "." + p + "." + s
open(os.path.join(here, "tokens.json"), "w").write(json.dumps(t, indent=1, sort_keys=True) + "\n")
