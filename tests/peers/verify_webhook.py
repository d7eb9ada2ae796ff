#!/usr/bin/python3
"""An independent webhook receiver, written from docs/webhooks.md alone (no project code), for WebhookPeerReceiverTests.

The signature check is the doc's recipe ("Verifying a delivery"): HMAC-SHA256 with the secret over "{t}.{raw body}",
lower-case hex, compared in constant time with each v1 in the X-CovidFunctions-Signature header (t=...,v1=...),
timestamp within 5 minutes. Only hmac/hashlib do the cryptography.

Usage:
  verify_webhook.py vector            check the doc's known vector; exit 0 when it verifies
  verify_webhook.py serve SECRET N    listen on 127.0.0.1 (a free port; prints "PORT <n>" first), take N POSTs, answer
                                      204 to a delivery that passes every check below and 401 otherwise, print one
                                      line per delivery ("ok <event> <id>" or "FAIL <reason>"), exit 0 when all passed.
Checks per delivery (each from the doc's "The request"): the signature verifies on the raw bytes and not on a tampered
copy nor with another secret; the body's "id" equals X-CovidFunctions-Delivery and is evt_ + 32 hex (evt_test_ + 32
hex for webhook.test); its "type" equals
X-CovidFunctions-Event; X-CovidFunctions-Attempt is a positive number; Content-Type is application/json; the
User-Agent is CovidFunctions-Webhooks/1; the body has "test" (true only for webhook.test).
"""
import hashlib
import hmac
import json
import re
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def verify(secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None) -> bool:
    # The doc's Python recipe, with the clock injectable for the known vector.
    now = time.time() if now is None else now
    parts = [p.split("=", 1) for p in (header or "").split(",") if "=" in p]
    t = next((v for k, v in parts if k == "t"), None)
    sigs = [v for k, v in parts if k == "v1"]
    if t is None or not (t.isascii() and t.isdigit()) or abs(now - int(t)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, s.encode()) for s in sigs)


def check_vector() -> list[str]:
    header = "t=1700000000,v1=06fa92e03eabcf0804f94bbcefae08d6b6cc2b685f5b1ddf2ab4984e33f01d95"
    problems = []
    if not verify("whsec_known_vector_secret", header, b'{"a":1}', now=1700000100):
        problems.append("the doc's known vector does not verify")
    if verify("whsec_known_vector_secret", header, b'{"a":1}', now=1700009999):
        problems.append("a timestamp 2.7 h old verified")
    return problems


def check_delivery(secret: str, headers, body: bytes) -> list[str]:
    problems = []
    signature = headers.get("X-CovidFunctions-Signature")
    if not signature or not re.fullmatch(r"t=[0-9]+,v1=[0-9a-f]{64}", signature):
        problems.append(f"signature header is not t=<digits>,v1=<64 hex>: {signature!r}")
    if not verify(secret, signature, body):
        problems.append("signature does not verify with the doc's recipe")
    if verify(secret, signature, body + b" "):
        problems.append("signature verifies a tampered body")
    if verify(secret + "x", signature, body):
        problems.append("signature verifies with another secret")
    try:
        payload = json.loads(body)
    except ValueError as e:
        return problems + [f"body is not JSON: {e}"]
    delivery = headers.get("X-CovidFunctions-Delivery")
    # A study event's id is evt_ + 32 hex (deterministic); a webhook.test's is evt_test_ + 32 hex (fresh each time).
    id_form = r"evt_test_[0-9a-f]{32}" if payload.get("type") == "webhook.test" else r"evt_[0-9a-f]{32}"
    if payload.get("id") != delivery or not re.fullmatch(id_form, delivery or ""):
        problems.append(f"id {payload.get('id')!r} vs X-CovidFunctions-Delivery {delivery!r}")
    if payload.get("type") != headers.get("X-CovidFunctions-Event"):
        problems.append(f"type {payload.get('type')!r} vs X-CovidFunctions-Event {headers.get('X-CovidFunctions-Event')!r}")
    attempt = headers.get("X-CovidFunctions-Attempt", "")
    if not (attempt.isdigit() and int(attempt) >= 1):
        problems.append(f"X-CovidFunctions-Attempt {attempt!r}")
    if not (headers.get("Content-Type") or "").startswith("application/json"):
        problems.append(f"Content-Type {headers.get('Content-Type')!r}")
    if headers.get("User-Agent") != "CovidFunctions-Webhooks/1":
        problems.append(f"User-Agent {headers.get('User-Agent')!r}")
    if payload.get("test") is not (payload.get("type") == "webhook.test"):
        problems.append(f"test {payload.get('test')!r} for type {payload.get('type')!r}")
    return problems


def serve(secret: str, count: int) -> int:
    failures = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            problems = check_delivery(secret, self.headers, body)
            if problems:
                failures.append(problems)
                print("FAIL " + "; ".join(problems), flush=True)
            else:
                payload = json.loads(body)
                print(f"ok {payload['type']} {payload['id']}", flush=True)
            self.send_response(401 if problems else 204)
            self.send_header("Content-Length", "0")
            # One request per connection (handle_request serves one): say so, so the sender never reuses a connection
            # this server has closed (a clean-clone CI run lost the second delivery that way).
            self.send_header("Connection", "close")
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002 (http.server's name)
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    for _ in range(count):
        server.handle_request()
    server.server_close()
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[1] == "vector":
        problems = check_vector()
        print("\n".join(problems) or "ok vector", flush=True)
        return 1 if problems else 0
    if len(argv) == 4 and argv[1] == "serve":
        return serve(argv[2], int(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
