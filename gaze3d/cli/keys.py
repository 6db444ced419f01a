"""``gaze3d keys DIR``: create CurveZMQ key pairs for a tracker reachable beyond loopback."""
from __future__ import annotations

import argparse


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "keys", help="create CurveZMQ keys (server + client) for `gaze3d tracker --curve-keys DIR`",
        description="Write server.key / server.key_secret (tracker), client.key / client.key_secret "
                    "(give both client.key_secret and server.key to each client machine) and "
                    "authorized_clients/client.key (the clients the tracker accepts).")
    p.add_argument("dir", help="folder to write the keys to (created if missing)")
    p.add_argument("--overwrite", action="store_true", help="replace existing keys")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..tracker.keys import generate_keys

    paths = generate_keys(args.dir, overwrite=args.overwrite)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
