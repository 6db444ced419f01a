"""CurveZMQ keys for a tracker that binds beyond loopback.

``gaze3d keys DIR`` writes, in ZeroMQ's certificate format (ZPL text)::

    DIR/server.key            server public key      (give to clients)
    DIR/server.key_secret     server key pair        (tracker only, mode 600)
    DIR/client.key            client public key
    DIR/client.key_secret     client key pair        (give to clients, mode 600)
    DIR/authorized_clients/   public keys of the clients the tracker accepts

A tracker started with ``--curve-keys DIR`` encrypts both sockets with its
secret key. If ``DIR/authorized_clients/`` holds ``*.key`` files, only clients
holding one of those key pairs are accepted (ZAP authentication); a client also
needs the server's public key. A client without them receives nothing.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Tuple, Union

import zmq
import zmq.auth

from ..errors import InputError

SERVER_NAME = "server"
CLIENT_NAME = "client"
AUTHORIZED_DIR = "authorized_clients"

KeyLike = Union[str, bytes, os.PathLike]


def generate_keys(directory, *, overwrite: bool = False) -> dict:
    """Create a server and a client key pair in ``directory``; returns ``{name: Path}``.

    All or nothing: every target is checked first and the keys are made in a
    temporary folder inside ``directory``, then moved into place, so a refusal
    or a failure leaves no half set (a client holding keys that do not match).
    """
    if not zmq.has("curve"):
        raise InputError("this libzmq has no CURVE support; install pyzmq wheels from PyPI")
    if not os.fspath(directory):  # Path("") would be the current folder
        raise InputError("keys folder '': expected a folder name")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: not a folder; expected a folder to write the keys to")
    authorized = directory / AUTHORIZED_DIR
    targets = {"server_public": directory / f"{SERVER_NAME}.key",
               "server_secret": directory / f"{SERVER_NAME}.key_secret",
               "client_public": directory / f"{CLIENT_NAME}.key",
               "client_secret": directory / f"{CLIENT_NAME}.key_secret",
               "authorized_client": authorized / f"{CLIENT_NAME}.key"}
    if authorized.exists() and not authorized.is_dir():
        raise InputError(f"{authorized}: not a folder; expected the folder of authorized client keys")
    for path in targets.values():
        if path.exists() and not path.is_file():
            raise InputError(f"{path}: not a regular file; expected a key file (remove it)")
    existing = [p for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise InputError(f"{existing[0]}: keys already exist (pass --overwrite to replace them; "
                         "clients holding the old keys will be refused)")
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".keys-", dir=directory))
    except OSError as exc:
        raise InputError(f"{directory}: cannot create the keys there ({exc.strerror or exc})") from None
    try:
        made = {}
        for name in (SERVER_NAME, CLIENT_NAME):
            pub, sec = zmq.auth.create_certificates(str(tmp), name)
            os.chmod(sec, 0o600)
            made[f"{name}_public"], made[f"{name}_secret"] = Path(pub), Path(sec)
        made["authorized_client"] = tmp / f"authorized_{CLIENT_NAME}.key"
        shutil.copyfile(made["client_public"], made["authorized_client"])
        authorized.mkdir(exist_ok=True)
        for key, path in made.items():
            os.replace(path, targets[key])
    except OSError as exc:
        raise InputError(f"{directory}: cannot write the keys there ({exc.strerror or exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not any(p.exists() for p in targets.values()):
            shutil.rmtree(directory, ignore_errors=True)
    return {k: v for k, v in targets.items() if k != "authorized_client"} | {"authorized_clients": authorized}


def _load(path: Path, need_secret: bool) -> Tuple[bytes, Optional[bytes]]:
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read CurveZMQ certificate ({exc})") from None
    if need_secret and not secret:
        raise InputError(f"{path}: certificate has no secret key (use the .key_secret file)")
    return public, secret


def load_server_keys(directory) -> Tuple[bytes, bytes]:
    """``(public, secret)`` z85 keys of the tracker from ``directory/server.key_secret``."""
    path = Path(directory) / f"{SERVER_NAME}.key_secret"
    if not path.is_file():
        raise InputError(f"--curve-keys {directory}: no {path.name} there (create keys with `gaze3d keys DIR`)")
    return _load(path, need_secret=True)


def public_key(key: KeyLike) -> bytes:
    """A z85 public key (40 chars), or read it from a certificate file or a keys folder."""
    if isinstance(key, (bytes, str)) and len(key) == 40 and not Path(os.fsdecode(key)).exists():
        return key.encode("ascii") if isinstance(key, str) else key
    path = Path(os.fsdecode(key))
    if path.is_dir():
        path = path / f"{SERVER_NAME}.key"
    if not path.is_file():
        raise InputError(f"curve key {key!r}: expected a 40-character z85 key or a certificate file")
    return _load(path, need_secret=False)[0]


def client_keys(cert: Optional[KeyLike]) -> Tuple[bytes, bytes]:
    """A client key pair: from a ``.key_secret`` file (or keys folder), or a fresh one if None."""
    if cert is None:
        return zmq.curve_keypair()
    path = Path(os.fsdecode(cert))
    if path.is_dir():
        path = path / f"{CLIENT_NAME}.key_secret"
    return _load(path, need_secret=True)


def configure_server(socket: zmq.Socket, public: bytes, secret: bytes) -> None:
    """Make ``socket`` a CURVE server (call before bind)."""
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True


def configure_client(socket: zmq.Socket, server_key: KeyLike, client_cert: Optional[KeyLike] = None) -> None:
    """Make ``socket`` a CURVE client of the server with public key ``server_key`` (call before connect)."""
    pub, sec = client_keys(client_cert)
    socket.curve_serverkey = public_key(server_key)
    socket.curve_publickey = pub
    socket.curve_secretkey = sec


def start_authenticator(context: zmq.Context, directory):
    """Start ZAP authentication for CURVE sockets of ``context``; returns the authenticator (call ``.stop()``).

    Clients listed in ``directory/authorized_clients`` are accepted; if that
    folder is missing or empty, any client holding the server's public key is.
    """
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(context)
    auth.start()
    authorized = Path(directory) / AUTHORIZED_DIR
    if authorized.is_dir() and any(authorized.glob("*.key")):
        auth.configure_curve(domain="*", location=str(authorized))
    else:
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
    return auth
