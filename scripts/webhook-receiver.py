#!/usr/bin/env python3
"""A webhook receiver for end-to-end tests: answers every POST with 200 and appends one JSON line per request
(received_at as unix seconds, path, headers, body) to the log file.

    webhook-receiver.py --port 18080 --log /tmp/hooks.jsonl
"""
import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            entry = {"received_at": time.time(), "path": self.path,
                     "headers": {name.lower(): value for name, value in self.headers.items()}, "body": body}
            with open(args.log, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
