"""A CloudWatch rpc-v2-cbor -> JSON 1.0 bridge in front of moto.

aws-sdk-cloudwatch speaks only Smithy rpc-v2-cbor; moto serves CloudWatch's
JSON 1.0 protocol. This bridge accepts
    POST /service/GraniteServiceVersion20100801/operation/<Op>
with a CBOR body, forwards it to moto as JSON 1.0
(`X-Amz-Target: GraniteServiceVersion20100801.<Op>`), and answers with the
JSON reply re-encoded as CBOR (timestamps as tag 1, header
`smithy-protocol: rpc-v2-cbor`; errors keep `__type` without namespace).
The Authorization header (and `x-moto-account-id`) are passed through, so
moto picks the same account as for the other services.

Usage: cloudwatch_bridge.py LISTEN_PORT MOTO_URL. Exits when stdin closes
(the test process that started it is gone).
"""

import datetime as dt
import json
import os
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cbor2

TARGET_PREFIX = "GraniteServiceVersion20100801"
PATH_PREFIX = f"/service/{TARGET_PREFIX}/operation/"

# Output members that are timestamps (CBOR tag 1) or doubles in the
# CloudWatch model; JSON alone cannot tell 70 from 70.0 or a number from a
# time.
TIMESTAMP_KEYS = {
    "StateUpdatedTimestamp",
    "AlarmConfigurationUpdatedTimestamp",
    "StateTransitionedTimestamp",
    "Timestamp",
    "Timestamps",
    "LastModified",
    "StartTime",
    "EndTime",
    "CreationDate",
}
DOUBLE_KEYS = {
    "Threshold",
    "Values",
    "Value",
    "Sum",
    "Average",
    "Minimum",
    "Maximum",
    "SampleCount",
}

UTC = dt.timezone.utc


def to_json(value):
    """CBOR request values -> JSON-compatible values (times as epoch seconds)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def as_time(v):
    if isinstance(v, (int, float)):
        return dt.datetime.fromtimestamp(v, tz=UTC)
    if isinstance(v, str):
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return v
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return v


def to_cbor(value, key=None):
    """JSON reply values -> values cbor2 encodes as the model wants."""
    if isinstance(value, dict):
        return {k: to_cbor(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cbor(v, key) for v in value]
    if key in TIMESTAMP_KEYS:
        return as_time(value)
    if key in DOUBLE_KEYS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


class Bridge(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    moto_url = ""

    def log_message(self, fmt, *args):  # quiet: moto logs requests already
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not self.path.startswith(PATH_PREFIX):
            self.reply(404, {"__type": "UnknownOperationException", "message": self.path})
            return
        op = self.path[len(PATH_PREFIX):]
        params = to_json(cbor2.loads(body)) if body else {}
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"{TARGET_PREFIX}.{op}",
        }
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "x-moto-account-id"):
            if self.headers.get(name):
                headers[name] = self.headers[name]
        req = urllib.request.Request(
            self.moto_url + "/", data=json.dumps(params).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except OSError as err:
            self.reply(502, {"__type": "ServiceUnavailable", "message": str(err)})
            return
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            data = {"__type": "InternalFailure", "message": raw.decode("utf-8", "replace")}
        if status >= 300:
            code = str(data.get("__type") or data.get("code") or "InternalFailure")
            code = code.rsplit("#", 1)[-1]
            message = data.get("message") or data.get("Message") or ""
            self.reply(status, {"__type": code, "message": message})
        else:
            self.reply(status, to_cbor(data))

    def reply(self, status, obj):
        out = cbor2.dumps(obj, datetime_as_timestamp=True, timezone=UTC)
        self.send_response(status)
        self.send_header("Content-Type", "application/cbor")
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def _exit_when_parent_goes():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def main():
    port, moto_url = int(sys.argv[1]), sys.argv[2].rstrip("/")
    Bridge.moto_url = moto_url
    threading.Thread(target=_exit_when_parent_goes, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), Bridge)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
