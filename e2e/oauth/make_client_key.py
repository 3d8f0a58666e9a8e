"""Writes a client's signing key for `private_key_jwt`: PREFIX.pem (PKCS #8, for the SDKs'
assertion signers) and PREFIX.jwks.json (its public half, registered with Gatehouse).

Usage: make_client_key.py PREFIX  (run by e2e/run.sh; `cryptography` and PyJWT, nobody's
code here, make both).
"""

from __future__ import annotations

import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm


def main(prefix: str) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with open(f"{prefix}.pem", "wb") as out:
        out.write(pem)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"use": "sig", "alg": "RS256"})
    with open(f"{prefix}.jwks.json", "w") as out:
        json.dump({"keys": [jwk]}, out)


if __name__ == "__main__":
    main(sys.argv[1])
