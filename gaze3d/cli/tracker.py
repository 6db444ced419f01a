"""``gaze3d tracker``: run the tracker process (source -> record -> publish)."""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys

from ..errors import InputError
from ..protocol import SCHEMA_VERSION
from ._args import bounded_int, output_file, positive_float

LOOPBACK_PUB = "tcp://127.0.0.1:*"
LOOPBACK_CTRL = "tcp://127.0.0.1:*"
PUBLIC_ANY = "tcp://0.0.0.0:*"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
C_INT_MAX = 2**31 - 1  # ZeroMQ socket options are C ints: a larger value overflows in pyzmq


def _endpoint(text: str) -> str:
    """An argparse ``type``: a ZeroMQ bind address; a tcp port must be 1..65535 or ``*``.

    libzmq does not refuse a bad port: it wraps it (``:-1`` binds 65535, ``:99999`` a random one).
    """
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a ZeroMQ address such as {LOOPBACK_PUB}, got {text!r}")
    if text.startswith("tcp://"):
        host, sep, port = text[len("tcp://"):].rpartition(":")
        if not sep or not host:
            raise argparse.ArgumentTypeError(f"expected tcp://HOST:PORT, got {text!r}")
        if port != "*" and not (re.fullmatch(r"[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
            raise argparse.ArgumentTypeError(f"expected a port in 1..65535 or * (a free port), got {text!r}")
    return text


def _c_int(low: int):
    """An argparse ``type``: an integer in ``low..C_INT_MAX`` (what a ZeroMQ socket option takes)."""
    return bounded_int(low, C_INT_MAX)


def _log_level(text: str) -> str:
    """An argparse ``type``: a logging level name, any case."""
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.upper()


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "tracker", help="run the tracker process: stream, record and publish gaze over ZeroMQ",
        description="Poll a gaze source, record every sample to a crash-safe file and publish it on a "
                    "ZeroMQ PUB socket; a REP socket answers control commands (docs/protocol.md). "
                    "Prints the bound addresses as one JSON line on stdout, then runs until SIGINT/SIGTERM "
                    "or a 'shutdown' command. Binds to loopback unless --bind-public is given, which "
                    "requires CurveZMQ keys (gaze3d keys DIR).")
    p.add_argument("--source", required=True,
                   help="sim, mouse, replay, tobii, pupil, lsl, or a plugin class module:pkg.mod:Class")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="source option (repeatable), for example --opt rate=1200 (sim); each source's options are "
                        "listed in docs/protocol.md")
    p.add_argument("--pub", type=_endpoint, default=None,
                   help=f"PUB bind address (default {LOOPBACK_PUB}; * = free port)")
    p.add_argument("--ctrl", type=_endpoint, default=None,
                   help=f"control (REP) bind address (default {LOOPBACK_CTRL})")
    p.add_argument("--record", default=None, metavar="SESSION.gaze3d",
                   help="record to this new file from the start")
    p.add_argument("--record-dir", default=None, metavar="DIR",
                   help="folder that recordings started by clients (start_recording) must lie in; relative "
                        "paths are resolved in it (default: the current folder)")
    p.add_argument("--bind-public", action="store_true",
                   help=f"allow non-loopback addresses (default {PUBLIC_ANY}); needs --curve-keys")
    p.add_argument("--curve-keys", default=None, metavar="DIR", help="CurveZMQ keys folder from `gaze3d keys`")
    p.add_argument("--heartbeat-s", type=positive_float, default=0.5, help="status heartbeat interval (s)")
    p.add_argument("--sndhwm", type=_c_int(0), default=10_000,
                   help="messages queued per subscriber before dropping (0 = no limit)")
    p.add_argument("--sndbuf", type=_c_int(1), default=None, help="kernel send buffer per subscriber (bytes)")
    p.add_argument("--backoff-s", type=positive_float, nargs=2, default=(0.1, 5.0), metavar=("FIRST", "MAX"),
                   help="reopen delays after a device error: first, doubling up to max (s)")
    p.add_argument("--wait-subscriber", action="store_true",
                   help="open the source only once a subscriber has joined (nothing of a replay or "
                        "scripted simulation is published unseen)")
    p.add_argument("--wait-for-device", action="store_true",
                   help="tobii: wait indefinitely for a first eye tracker (default: give up after the source "
                        "option wait_s, 10 s, with exit code 2)")
    p.add_argument("--exit-when-done", action="store_true", help="exit when a finite source (replay) ends")
    p.add_argument("--log-level", type=_log_level, default="WARNING",
                   help=f"stderr log level: {', '.join(LOG_LEVELS)} (any case)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..tracker import keys as keys_mod
    from ..tracker.plugins import make_source, parse_options
    from ..tracker.server import TrackerServer, is_loopback

    # checked before anything is bound or created
    if args.backoff_s[0] > args.backoff_s[1]:
        raise InputError(f"--backoff-s {args.backoff_s[0]:g} {args.backoff_s[1]:g}: expected FIRST <= MAX")
    if args.record is not None:
        output_file(args.record, "--record")
    logging.basicConfig(level=getattr(logging, args.log_level),
                        format="gaze3d tracker: %(levelname)s %(message)s", stream=sys.stderr)
    default = PUBLIC_ANY if args.bind_public else None
    pub = args.pub or default or LOOPBACK_PUB
    ctrl = args.ctrl or default or LOOPBACK_CTRL
    for flag, address in (("--pub", pub), ("--ctrl", ctrl)):
        if not is_loopback(address):
            if not args.bind_public:
                raise InputError(f"{flag} {address}: not a loopback address; pass --bind-public --curve-keys DIR "
                                 "to serve other machines")
            if not args.curve_keys:
                raise InputError(f"{flag} {address}: --bind-public requires --curve-keys DIR "
                                 "(create keys with `gaze3d keys DIR`)")
    # The acquisition thread must get the GIL back within ~0.2 ms when a sample
    # is due, not after the default 5 ms switch interval of a busy recorder thread.
    sys.setswitchinterval(0.0002)
    options = parse_options(args.opt)
    if args.wait_for_device:  # a source option: a source that has no device to wait for refuses it by name
        options["wait_for_device"] = "true"
    source = make_source(args.source, options)
    server = TrackerServer(source, pub=pub, ctrl=ctrl, record=args.record, curve_keys=args.curve_keys,
                           heartbeat_s=args.heartbeat_s, sndhwm=args.sndhwm, sndbuf=args.sndbuf,
                           backoff_initial_s=args.backoff_s[0], backoff_max_s=args.backoff_s[1],
                           wait_subscriber=args.wait_subscriber, record_dir=args.record_dir)
    server.start()

    def _terminate(signum, frame):
        server._stop.set()

    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    line = {"v": SCHEMA_VERSION, "pub": server.pub_address, "ctrl": server.ctrl_address, "pid": os.getpid(),
            "session": server.session, "source": server.source_name, "recording": server._recording_path,
            "record_dir": server.record_dir}
    if args.curve_keys:
        line["curve_server_key"] = keys_mod.load_server_keys(args.curve_keys)[0].decode("ascii")
    print(json.dumps(line), flush=True)
    try:
        while not server.wait(0.2):
            if args.exit_when_done and server.state == "ended":
                break
    finally:
        server.stop()
    if server.state == "failed":
        print(f"gaze3d tracker: error: {server.last_error}", file=sys.stderr)
        return 2
    return 0
