import http.server
import threading

import pytest

from segpipe_tests.defs.alert_capture import Recorder


@pytest.fixture
def webhook():
    """A webhook URL on loopback, and the list of what it received."""
    Recorder.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", Recorder.received
    server.shutdown()
    server.server_close()
