#!/usr/bin/env python3
"""Reference Python STTP subscriber (sttpapi 0.7.6) as a test harness.

Connects to a publisher, lets autorequestmetadata/autosubscribe run, and records every received
measurement as one JSON line in --out:

    {"signal": "<guid>", "ticks": <int>, "value_bits": "<f32 big-endian hex>", "value": <float|null>, "flags": <int>}

stdout protocol (everything else goes to stderr):
    READY                      once the first signal index cache arrived (subscription updated)
    {"received": n, "signals": k, "metadata_signals": m, "unresolved": [...], "subscribed": bool,
     "disconnects": d, "udp_port": p}
                               final summary line, after --duration seconds (or --expect points);
                               unresolved = received signal IDs missing from the received metadata;
                               udp_port = the data-channel port (null without --udp)

--udp 0 binds a free UDP port here, before sttpapi runs, and hands that bound socket to sttpapi's
data channel (see hold_udp_port): the port is never released between being chosen and being used,
so a parallel test cannot take it (sttpapi itself can only bind a port number it is given).

Exit status: 0 after the run (check the summary), 1 if the connection failed, 3 on the hard deadline.
"""

import argparse
import json
import math
import os
import signal
import socket
import struct
import sys
import threading
import time
import types
import uuid

from sttp.config import Config
from sttp.settings import Settings
from sttp.subscriber import Subscriber
import sttp.transport.datasubscriber as _datasubscriber

GRACE_SECS = 20  # connect + dispose allowance beyond --duration before the hard deadline fires


def log(msg):
    print(f"[sub_peer] {msg}", file=sys.stderr, flush=True)


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class _HeldUdpSocket(socket.socket):
    """A UDP socket bound before sttpapi asks for one; its bind() accepts the port it holds."""

    def bind(self, address):
        held = self.getsockname()[1]
        if int(address[1]) != held:
            raise OSError(f"this socket holds UDP port {held}, not {address[1]}")


class _SocketModuleWithHeldUdp(types.ModuleType):
    """The `socket` module as sttpapi's datasubscriber sees it, except that its first UDP
    socket is the one bound here already; every later one (a reconnect) is a fresh socket."""

    def __init__(self, real, held):
        super().__init__(real.__name__)
        self._real = real
        self._held = [held]

    def __getattr__(self, name):
        return getattr(self._real, name)

    def socket(self, family=-1, type=-1, proto=-1, fileno=None):
        if type == self._real.SOCK_DGRAM and self._held:
            return self._held.pop()
        if type == self._real.SOCK_DGRAM:
            log("data channel re-opened after a reconnect: binding the same port again")
        return self._real.socket(family, type, proto, fileno)


def hold_udp_port():
    """Binds a UDP socket on a free port (port 0), installs it as the one sttpapi's data channel
    will get, and returns the port: the subscription names this port and sttpapi reads from this
    very socket, so the port is held from the moment it is chosen."""
    held = _HeldUdpSocket(socket.AF_INET, socket.SOCK_DGRAM)
    socket.socket.bind(held, ("0.0.0.0", 0))  # the real bind: _HeldUdpSocket.bind only checks
    port = held.getsockname()[1]
    _datasubscriber.socket = _SocketModuleWithHeldUdp(socket, held)
    log(f"UDP data channel bound on port {port} (held for sttpapi)")
    return port


def record_line(m):
    value = float(m.value)
    bits = struct.pack(">f", value).hex()  # the wire value is f32, Python widened it exactly
    shown = value if math.isfinite(value) else None  # strict JSON has no NaN/inf; value_bits is exact
    return json.dumps({"signal": str(m.signalid), "ticks": int(m.timestamp),
                       "value_bits": bits, "value": shown, "flags": int(m.flags)})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--compact", action="store_true", help="compact format (compress_payloaddata=False)")
    ap.add_argument("--udp", type=int, default=None, metavar="PORT",
                    help="UDP data channel port (Settings.udpport); 0 = a free port bound here and held")
    ap.add_argument("--filter", default="FILTER ActiveMeasurements WHERE True")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds to record after start")
    ap.add_argument("--expect", type=int, default=0, help="stop early once this many points arrived")
    ap.add_argument("--out", required=True, help="JSON lines file of received measurements")
    ap.add_argument("--no-reconnect", action="store_true", help="Config(autoreconnect=False)")
    args = ap.parse_args()

    def on_deadline(_signum, _frame):
        log("hard deadline reached, exiting")
        os._exit(3)

    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(int(math.ceil(args.duration)) + GRACE_SECS)

    lock = threading.Lock()
    out = open(args.out, "w", encoding="utf-8")
    state = {"received": 0, "signals": set(), "ready": False, "closed": False, "cache": None,
             "disconnects": 0}
    done = threading.Event()

    def on_measurements(measurements):
        lines = [record_line(m) for m in measurements]
        with lock:
            if state["closed"]:
                return
            if lines:
                out.write("\n".join(lines) + "\n")
            state["received"] += len(measurements)
            state["signals"].update(str(m.signalid) for m in measurements)
            if args.expect and state["received"] >= args.expect:
                done.set()

    def on_subscription_updated(cache):
        with lock:
            first = not state["ready"]
            state["ready"] = True
        log(f"subscription updated: {int(cache.count)} signals in the signal index cache")
        if first:
            emit("READY")

    def on_metadata(_dataset):
        with lock:
            state["cache"] = sub.metadatacache  # keep it: a disconnect may reset the live one

    def on_terminated():
        with lock:
            state["disconnects"] += 1
        log("connection terminated")

    sub = Subscriber()
    sub.statusmessage_logger = log
    sub.errormessage_logger = lambda msg: log(f"ERROR: {msg}")
    sub.newmeasurements_receiver = on_measurements
    sub.subscriptionupdated_receiver = on_subscription_updated
    sub.metadatanotification_receiver = on_metadata
    sub.connectionterminated_receiver = on_terminated
    udp_port = None
    if args.udp is not None:
        udp_port = hold_udp_port() if args.udp == 0 else args.udp
    sub.subscribe(args.filter, Settings(udpport=udp_port or 0))

    start = time.monotonic()
    # Retry refused connections for about --duration (the publisher may still be starting).
    config = Config(compress_payloaddata=not args.compact, retryinterval=0.25, maxretryinterval=0.5,
                    maxretries=max(1, int(args.duration / 0.5)), autoreconnect=not args.no_reconnect)
    err = sub.connect(f"{args.host}:{args.port}", config)
    rc = 0
    if err is not None:
        log(f"connect failed: {err}")
        rc = 1
    else:
        done.wait(max(0.0, args.duration - (time.monotonic() - start)))

    with lock:
        out.flush()
        cache = state["cache"]
        known = cache.signalid_measurement_map if cache is not None else {}
        unresolved = sorted(s for s in state["signals"] if uuid.UUID(s) not in known)
        summary = {
            "received": state["received"],
            "signals": len(state["signals"]),
            "metadata_signals": len(cache.measurement_records) if cache is not None else 0,
            "unresolved": unresolved,
            "subscribed": state["ready"],
            "disconnects": state["disconnects"],
            "udp_port": udp_port,
        }
        state["closed"] = True
    emit(json.dumps(summary))

    # sttpapi's dispose sometimes hangs (peers.md): give it a few seconds, then leave regardless.
    closer = threading.Thread(target=sub.dispose, daemon=True)
    closer.start()
    closer.join(5.0)
    if closer.is_alive():
        log("dispose hung; exiting anyway")
    out.close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)  # never leave sttpapi's worker threads behind


if __name__ == "__main__":
    main()
