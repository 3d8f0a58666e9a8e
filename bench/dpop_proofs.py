#!/usr/bin/env python3
"""DPoP proofs for the load benchmark's "dpop" target (bench/run.sh).

Makes a P-256 key, asks Gatehouse's token endpoint for a client-credentials token bound to it
(a proof in the DPoP header, RFC 9449 section 5), prints the access token, and writes COUNT
further proofs (each with its own jti, for POST to HTU, bound to the token by `ath`) one per
line to OUT. Each proof is single use at the gateway, so a run needs as many as it sends.

Uses the `cryptography` package only; the JWS is assembled here (RFC 7515 compact form).
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import time
import urllib.parse
import urllib.request

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--token-url", required=True)
    parser.add_argument("--basic", required=True, help="base64 of client_id:client_secret")
    parser.add_argument("--resource", required=True)
    parser.add_argument("--htu", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }
    header = b64(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).encode())

    def proof(htu: str, ath: str | None) -> str:
        claims = {"jti": b64(os.urandom(12)), "htm": "POST", "htu": htu, "iat": int(time.time())}
        if ath:
            claims["ath"] = ath
        signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    body = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "resource": args.resource}
    ).encode()
    request = urllib.request.Request(
        args.token_url,
        data=body,
        headers={
            "Authorization": f"Basic {args.basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "DPoP": proof(args.token_url, None),
        },
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.load(response)
    if answer.get("token_type") != "DPoP":
        print(f"the token is not DPoP-bound: {answer}", file=sys.stderr)
        return 1
    token = answer["access_token"]
    ath = b64(hashlib.sha256(token.encode()).digest())
    with open(args.out, "w") as out:
        for _ in range(args.count):
            out.write(proof(args.htu, ath))
            out.write("\n")
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
