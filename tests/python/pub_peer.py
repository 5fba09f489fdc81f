#!/usr/bin/env python3
"""Reference Python STTP publisher (sttpapi 0.7.6) as a test harness.

Defines one device (PYPUB) and N measurements with deterministic signal IDs, then publishes K frames
of deterministic points once a subscriber is connected and subscribed. Every published point is
written to --out in the same JSON-lines format as sub_peer.py.

stdout protocol (everything else goes to stderr):
    {"port": P, "signals": [{"id": "<guid>", "tag": "..."}, ...]}
    LISTENING
    SUBSCRIBED     a subscriber holds an active subscription with a signal index cache
    DONE           all K frames published; the process then lingers until killed or --linger passes

Exit status: 0 normally, 1 if nobody subscribed within --wait, 3 on the hard deadline.
Only the TSSC path of this publisher works (peers.md P2: its compact packets lack the count).
"""

import argparse
import json
import math
import os
import signal
import struct
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import numpy as np
from sttp.publisher import Publisher
from sttp.transport.measurement import Measurement

BASE_TICKS = 638712864000000000  # 2025-01-01T00:00:00Z in .NET ticks
FRAME_TICKS = 333333             # ~30 frames per second of data time
FLAGS = [0x00000000, 0x00000002, 0x00001000, 0x00020000]  # Normal, SuspectData, CalculatedValue, SuspectTime
ID_NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4b7e-9a53-2a1e5f0c7d10")
# peers.md P1: a whole-second UpdatedOn is re-serialised as "...:00.Z", which its own subscriber
# cannot parse. Pin every UpdatedOn to a value with non-zero milliseconds.
UPDATED_ON = "2025-01-01T00:00:00.123Z"


def log(msg):
    print(f"[pub_peer] {msg}", file=sys.stderr, flush=True)


def emit(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def signal_id(i):
    return uuid.uuid5(ID_NAMESPACE, f"pub_peer/{i}")


def point(i, f):
    """Deterministic (value, ticks, flags) of signal i at frame f; value is exact in f32."""
    value = float(np.float32(i * 1000 + f * 0.25))
    return value, BASE_TICKS + f * FRAME_TICKS, FLAGS[(i + f) % len(FLAGS)]


def record_line(sid, value, ticks, flags):
    return json.dumps({"signal": str(sid), "ticks": ticks, "value_bits": struct.pack(">f", value).hex(),
                       "value": value, "flags": flags})


def write_metadata(pub, path, n):
    """Build the metadata file with the packaged template + define_* calls, then pin IDs and dates."""
    if os.path.exists(path):
        os.remove(path)  # start from the template so the file holds exactly our N measurements
    pub.metadata_path = path
    device = pub.define_output_source("Python test publisher", "PYPUB")
    tags = [f"PYPUB_S{i}" for i in range(n)]
    for i, tag in enumerate(tags):
        pub.define_output_measurement(device, tag, f"pub_peer signal {i}", "CALC")
    tree = ET.parse(path)
    by_tag = {tag: i for i, tag in enumerate(tags)}
    for row in tree.getroot().iter("MeasurementDetail"):
        row.find("SignalID").text = str(signal_id(by_tag[row.find("PointTag").text]))
    for elem in tree.getroot().iter("UpdatedOn"):
        elem.text = UPDATED_ON
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return [{"id": str(signal_id(i)), "tag": tag} for i, tag in enumerate(tags)]


def subscribed(pub):
    return any(c.is_subscribed and c.signal_index_cache is not None for c in pub.subscriber_connections)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True, help="TCP port (0 = pick a free one, reported on stdout)")
    ap.add_argument("--signals", type=int, default=10)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rate", type=float, default=30.0, help="frames per second (0 = as fast as possible)")
    ap.add_argument("--out", required=True, help="JSON lines file of published measurements")
    ap.add_argument("--metadata", required=True, help="metadata XML path (overwritten)")
    ap.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a subscriber")
    ap.add_argument("--linger", type=float, default=30.0, help="seconds to stay up after DONE")
    args = ap.parse_args()

    publish_secs = args.frames / args.rate if args.rate > 0 else args.frames * args.signals * 1e-4
    deadline = args.wait + publish_secs + args.linger + 30

    def on_deadline(_signum, _frame):
        log("hard deadline reached, exiting")
        os._exit(3)

    signal.signal(signal.SIGALRM, on_deadline)
    signal.alarm(int(math.ceil(deadline)))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    pub = Publisher()
    pub.statusmessage_logger = log
    pub.errormessage_logger = lambda msg: log(f"ERROR: {msg}")
    pub.clientconnected_receiver = lambda c: log(f"client connected: {c.connection_id}")
    pub.clientdisconnected_receiver = lambda c: log(f"client disconnected: {c.connection_id}")

    signals = write_metadata(pub, args.metadata, args.signals)
    err = pub.load_metadata()
    if err is not None:
        log(f"load_metadata failed: {err}")
        os._exit(1)
    pub.start(args.port)
    port = args.port or pub._datapublisher._server_socket.getsockname()[1]
    emit(json.dumps({"port": port, "signals": signals}))
    emit("LISTENING")

    rc = 0
    wait_until = time.monotonic() + args.wait
    while not subscribed(pub) and time.monotonic() < wait_until:
        time.sleep(0.05)
    if not subscribed(pub):
        log(f"no subscriber within {args.wait} s")
        rc = 1
    else:
        emit("SUBSCRIBED")
        ids = [signal_id(i) for i in range(args.signals)]
        start = time.monotonic()
        with open(args.out, "w", encoding="utf-8") as out:
            for f in range(args.frames):
                if args.rate > 0:
                    delay = start + f / args.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                frame = []
                for i, sid in enumerate(ids):
                    value, ticks, flags = point(i, f)
                    frame.append(Measurement(signalid=sid, value=np.float64(value),
                                             timestamp=np.uint64(ticks), flags=np.uint32(flags)))
                    out.write(record_line(sid, value, ticks, flags) + "\n")
                pub.publish_measurements(frame)
        log(f"published {args.frames} frames x {args.signals} signals in {time.monotonic() - start:.2f} s")
        emit("DONE")
        time.sleep(args.linger)

    # sttpapi's dispose may hang: bound it, then exit without waiting for its threads.
    closer = threading.Thread(target=pub.dispose, daemon=True)
    closer.start()
    closer.join(5.0)
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    main()
