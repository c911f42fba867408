"""Real security services for tests: a JWKS server with generated keys, redis-server, PostgreSQL; token minting."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from coe_testing.servers import ServerThread
from gateway.auth import hash_key

ISS, AUD = "https://idp.example.test", "coe-gateway"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_keys(path: Path, *names: str) -> Path:
    """A keys file where each name's key is `sk-<name>` (stored, as always, only as its hash)."""
    path.write_text("keys:\n" + "".join(f"  - {{name: {n}, sha256: {hash_key('sk-' + n)}}}\n" for n in names))
    return path


def public_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


def mint(key: Any = RSA_KEY, kid: str = "rsa-1", alg: str = "RS256", **claims: Any) -> str:
    """A real signed token; claims override the valid defaults (subject alice, group analysts)."""
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now, "exp": now + 300, "groups": ["analysts"], **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def unsigned_token(**claims: Any) -> str:
    """`alg: none`: no signature at all."""
    body = {"iss": ISS, "aud": AUD, "sub": "eve", "exp": int(time.time()) + 60, **claims}
    return jwt.encode(body, None, algorithm="none", headers={"kid": "rsa-1"})


def hmac_with_public_key_token(**claims: Any) -> str:
    """HS256 signed with the issuer's public key PEM as the secret: the classic algorithm-confusion forgery."""
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(b'{"alg":"HS256","kid":"rsa-1","typ":"JWT"}')
    payload = _b64(json.dumps({"iss": ISS, "aud": AUD, "sub": "eve", "exp": int(time.time()) + 60,
                               **claims}).encode())
    signature = _b64(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest())
    return (header + b"." + payload + b"." + signature).decode()


@pytest.fixture
def jwks_server() -> Iterator[tuple[ServerThread, dict[str, Any]]]:
    """The issuer's key set on a real loopback server; tests rotate `served["keys"]` and read `hits`."""
    served: dict[str, Any] = {"keys": [public_jwk(RSA_KEY, "rsa-1"), public_jwk(EC_KEY, "ec-1")], "hits": 0}

    async def jwks(request: Request) -> JSONResponse:
        served["hits"] += 1
        return JSONResponse({"keys": served["keys"]})

    with ServerThread(Starlette(routes=[Route("/jwks", jwks)]), lifespan="off") as server:
        yield server, served


@dataclass
class RedisServer:
    """A redis-server on loopback, owned by the test."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (make system-deps installs it)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield RedisServer(port, proc)
    if proc.poll() is None:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def postgres() -> Iterator[str]:
    """A PostgreSQL server on loopback for the test; yields its DSN."""
    if not (PG_BIN / "initdb").is_file():
        pytest.skip("PostgreSQL 15 is not installed (make system-deps installs it)")
    # PostgreSQL refuses to run as root: run it as the `postgres` user in a folder it owns.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    # Not under pytest's tmp_path: its parents are private to root, and the server must reach its folder.
    holder = Path(tempfile.mkdtemp(prefix="coe-pg-"))
    data = holder / "pg"
    data.mkdir()
    if prefix:
        shutil.chown(holder, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "coe", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(data / "log"),
                    "-o", f"-p {port} -k {data} -h 127.0.0.1", "start"], check=True, capture_output=True)
    yield f"postgresql://coe@127.0.0.1:{port}/postgres"
    subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], capture_output=True)
    shutil.rmtree(holder, ignore_errors=True)
