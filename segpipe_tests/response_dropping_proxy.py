"""A TCP proxy in front of the test S3 server that loses one response, as a flaky network does.

The request whose first line matches reaches the server and is carried out; the server's final
answer (not an interim "100 Continue", which the client waits for before sending a body) is
swallowed and the client's connection closed, so the client sees a dropped connection and
retries a write that already succeeded. HTTP/1.1 clients send one request at a time on a
connection, so the bytes the server sends after that request are its answer to it.
"""

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class DroppingProxy:
    url: str
    pattern: re.Pattern[bytes]
    matched: list[bytes] = field(default_factory=list)  # request lines that matched, dropped or not
    dropped: int = 0


def _pump(source: socket.socket, sink: socket.socket, on_data) -> None:
    try:
        while data := source.recv(65536):
            if not on_data(data):
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _serve(proxy: DroppingProxy, listener: socket.socket, upstream: tuple[str, int]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        server = socket.create_connection(upstream)
        state = {"drop_next_response": False}

        def request(data: bytes, state=state) -> bool:
            line = data.split(b"\r\n", 1)[0]
            if proxy.pattern.match(line):
                proxy.matched.append(line)
                if proxy.dropped == 0:
                    state["drop_next_response"] = True
            return True

        def response(data: bytes, state=state) -> bool:
            if state["drop_next_response"] and not data.startswith(b"HTTP/1.1 100"):  # not "send the body"
                proxy.dropped += 1
                state["drop_next_response"] = False
                return False  # swallow the answer and close both sides
            return True

        threading.Thread(target=_pump, args=(client, server, request), daemon=True).start()
        threading.Thread(target=_pump, args=(server, client, response), daemon=True).start()


@contextmanager
def dropping_proxy(endpoint_url: str, request_line: str) -> Iterator[DroppingProxy]:
    """A proxy to endpoint_url that loses the response to the first request whose request line
    matches the regular expression request_line."""
    host, port = endpoint_url.removeprefix("http://").split(":")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    proxy = DroppingProxy(f"http://127.0.0.1:{listener.getsockname()[1]}", re.compile(request_line.encode()))
    thread = threading.Thread(target=_serve, args=(proxy, listener, (host, int(port))), daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        listener.close()
