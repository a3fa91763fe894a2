#!/usr/bin/env python3
"""A notification receiver for trying Gatehouse's notifications (docs/notifications.md): listens on
127.0.0.1:PORT (default 9000), checks each POST's X-Gatehouse-Signature against the HMAC key in
$GATEHOUSE_HMAC_KEY, drops repeated CloudEvents ids (delivery is at least once), and prints one
line per notification. Standard library only.

    GATEHOUSE_HMAC_KEY=... python3 examples/notification-receiver.py [PORT]
"""
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

KEY = os.environ.get("GATEHOUSE_HMAC_KEY", "").encode()
seen = set()


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        expected = "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()
        signed = hmac.compare_digest(self.headers.get("X-Gatehouse-Signature", ""), expected)
        if not signed:
            # A receiver acts only on signed notifications.
            self.send_response(401)
            self.end_headers()
            print(f"{self.path}: REFUSED, bad signature", flush=True)
            return
        self.send_response(200)
        self.end_headers()
        event = json.loads(body)
        if "specversion" in event:
            if event["id"] in seen:
                print(f"{self.path}: duplicate {event['id']} dropped", flush=True)
                return
            seen.add(event["id"])
            data = event["data"]
            print(f"{event['time']} {event['type']} {event['subject']}: {data['message']}"
                  f" (signature ok)", flush=True)
        else:
            print(f"{self.path}: slack: {event['text']} (signature ok)", flush=True)

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
HTTPServer(("127.0.0.1", port), Receiver).serve_forever()
