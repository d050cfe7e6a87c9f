"""What an alert sensor tells the team, captured for tests: the lines it logs for its tick, and what a
webhook receives (a real HTTP server on loopback)."""

import http.server
import json
import logging


class LogLines(logging.Handler):
    """(level, message) of every record, as the sensor's tick log shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.levelname, record.getMessage()))


class Recorder(http.server.BaseHTTPRequestHandler):
    """Accepts every POST and records its content type and JSON body."""

    received: list[dict] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append({"content_type": self.headers["Content-Type"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass
