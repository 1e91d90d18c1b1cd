"""A stand-in for ``python -m llama_cpp.server`` in launcher tests: takes the same options.

FAKE_SERVER_MODE (environment): "serve" answers GET /v1/models and echoes chat prompts back as
"{}", "exit" prints a message and exits with code 3, "hang" never opens the port.
FAKE_SERVER_LOAD_S (environment): seconds to wait before opening the port, as a real server
loads its model first (default 0). A port that is taken makes it exit with code 1, as uvicorn does.
FAKE_SERVER_LISTS (environment): the model id GET /v1/models lists (default: --model_alias).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._send({"object": "list", "data": [{"id": ALIAS, "object": "model", "owned_by": "me"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send({"choices": [{"index": 0, "message": {"role": "assistant", "content": "{}"}}]})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--model_alias", default="fake")
    args, _ = parser.parse_known_args()
    ALIAS = os.environ.get("FAKE_SERVER_LISTS", args.model_alias)
    mode = os.environ.get("FAKE_SERVER_MODE", "serve")
    print(f"fake server pid {os.getpid()} mode {mode}", flush=True)
    if mode == "exit":
        print("error: cannot load the model file", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "hang":
        while True:
            time.sleep(1)
    time.sleep(float(os.environ.get("FAKE_SERVER_LOAD_S", "0")))
    try:
        server = HTTPServer((args.host, args.port), Handler)
    except OSError as err:
        print(f"error while attempting to bind on address ({args.host!r}, {args.port}): {err.strerror}", flush=True)
        sys.exit(1)
    print("serving", flush=True)
    server.serve_forever()
