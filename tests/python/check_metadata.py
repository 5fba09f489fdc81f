#!/usr/bin/env python3
"""Check that the Python sttpapi 0.7.6 subscriber accepts metadata XML written by the Rust writer.

    check_metadata.py XMLFILE EXPECTED_COUNT

XMLFILE is the MetadataRefresh payload (plain XML, or gzip: it is sniffed). EXPECTED_COUNT is
the number of MeasurementDetail rows the file must describe.

The file goes through exactly the code the stock subscriber runs when metadata arrives
(`Subscriber._handle_metadatareceived`: `DataSet.from_xml` then `MetadataCache`), with
auto-subscribe off so nothing touches the network. Its parser fails silently on some datetimes
(peers.md P1), so every measurement is then checked field by field against an independent reading
of the raw XML: signal ID, point tag, device (acronym and the linked DeviceDetail record) and
UpdatedOn (value, not the parser's default).

Prints one JSON summary line on stdout; exit status 0 = pass, 1 = check failed, 2 = bad input.
"""

import gzip
import json
import os
import re
import sys
from datetime import datetime
from uuid import UUID
from xml.etree import ElementTree

from sttp.config import Config
from sttp.data.dataset import DataSet
from sttp.subscriber import Subscriber

MAX_REPORTED = 20
# The writer's form (wire.md §7 / peers.md P1): always a fraction, always "Z".
ISO_Z = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,7}))?Z$")


def expected_datetime(text):
    """Naive UTC datetime for the writer's `…Z` form, truncated to microseconds like sttpapi."""
    m = ISO_Z.match(text.strip())
    if m is None:
        return None
    y, mo, d, h, mi, s, frac = m.groups()
    micro = int((frac or "").ljust(6, "0")[:6])
    return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro)


def raw_records(xml_bytes, table):
    """Field texts of every `<table>` record, read without sttpapi."""
    root = ElementTree.fromstring(xml_bytes)
    out = []
    for rec in root:
        if rec.tag == table:
            out.append({field.tag: (field.text or "") for field in rec})
    return out


def finish(summary, code):
    print(json.dumps(summary, sort_keys=True))
    sys.stdout.flush()
    # sttpapi creates a thread pool in DataSubscriber(); never wait for it.
    os._exit(code)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        finish({"ok": False, "error": "usage: check_metadata.py XMLFILE EXPECTED_COUNT"}, 2)
    path = sys.argv[1]
    try:
        expected = int(sys.argv[2])
        with open(path, "rb") as f:
            data = f.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        raw = raw_records(data, "MeasurementDetail")
    except Exception as ex:  # noqa: BLE001 - any unreadable input is "bad input"
        finish({"ok": False, "error": f"cannot read {path}: {ex!r}"}, 2)

    failures = []

    def fail(msg):
        failures.append(msg)

    # 1. The subscriber's own metadata path.
    errors, notified = [], []
    sub = Subscriber()
    sub._config = Config(autorequestmetadata=True, autosubscribe=False)
    sub.statusmessage_logger = lambda _msg: None
    sub.errormessage_logger = errors.append
    sub.metadatanotification_receiver = notified.append
    try:
        sub._handle_metadatareceived(data)
    except Exception as ex:  # noqa: BLE001 - sttpapi raises from inside its parser
        fail(f"subscriber metadata handler raised {ex!r}")
    for e in errors:
        fail(f"subscriber error: {e}")
    if not notified:
        fail("subscriber never delivered the metadata (parse failed silently)")
    cache = sub.metadatacache

    # 2. The bare DataSet parser, as publishers and tools use it.
    # It returns some errors and raises others (bad datetimes, GUIDs).
    try:
        dataset, err = DataSet.from_xml(data)
    except Exception as ex:  # noqa: BLE001
        dataset, err = None, ex
    if err is not None:
        fail(f"DataSet.from_xml: {err!r}")
    tables = {t.name: t.rowcount for t in dataset} if err is None else {}

    # 3. Every measurement, field by field.
    if len(raw) != expected:
        fail(f"file has {len(raw)} MeasurementDetail rows, expected {expected}")
    if len(cache.measurement_records) != len(raw):
        fail(f"cache has {len(cache.measurement_records)} measurements, file {len(raw)}")
    if len(cache.signalid_measurement_map) != len(raw):
        fail(f"{len(cache.signalid_measurement_map)} distinct signal IDs for {len(raw)} rows")
    checked = 0
    for i, rec in enumerate(raw):
        try:
            signal = UUID(rec.get("SignalID", ""))
        except ValueError:
            fail(f"row {i}: SignalID {rec.get('SignalID')!r} is not a GUID")
            continue
        m = cache.find_measurement_signalid(signal)
        if m is None:
            fail(f"row {i}: signal {signal} missing from MetadataCache")
            continue
        if m.pointtag != rec.get("PointTag"):
            fail(f"row {i}: point tag {m.pointtag!r} != {rec.get('PointTag')!r}")
        if m.deviceacronym != rec.get("DeviceAcronym"):
            fail(f"row {i}: device {m.deviceacronym!r} != {rec.get('DeviceAcronym')!r}")
        if m.device is None or m.device.acronym != rec.get("DeviceAcronym"):
            fail(f"row {i}: device {rec.get('DeviceAcronym')!r} not linked to a DeviceDetail row")
        want = expected_datetime(rec.get("UpdatedOn", ""))
        if want is None:
            fail(f"row {i}: UpdatedOn {rec.get('UpdatedOn')!r} is not in the writer's form")
        elif not isinstance(m.updatedon, datetime) or m.updatedon.replace(tzinfo=None) != want:
            fail(f"row {i}: UpdatedOn parsed as {m.updatedon!r}, expected {want!r}")
        checked += 1

    for d in cache.device_records:
        if not isinstance(d.updatedon, datetime):
            fail(f"device {d.acronym!r}: UpdatedOn {d.updatedon!r} did not parse")

    summary = {
        "ok": not failures,
        "file": path,
        "expected": expected,
        "measurements": len(cache.measurement_records),
        "checked": checked,
        "devices": len(cache.device_records),
        "phasors": len(cache.phasor_records),
        "tables": tables,
        "failures": failures[:MAX_REPORTED],
        "failure_count": len(failures),
    }
    finish(summary, 0 if not failures else 1)


if __name__ == "__main__":
    main()
