"""The gateway in front of the model services: forwarding, and a backend swap under load with no failed request."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from service import gateway_control
from service.gateway_control import GatewayPaths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Backend(ThreadingHTTPServer):
    daemon_threads = True


def start_backend(name: str) -> tuple[_Backend, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            time.sleep(0.002)  # a request takes a moment: some are in flight at any time
            payload = json.dumps({"backend": name, "echo": json.loads(body)}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = _Backend(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture()
def gateway(tmp_path):
    files = GatewayPaths(tmp_path / "serving")
    port = free_port()
    blue, blue_url = start_backend("blue")
    gateway_control.ensure_running("127.0.0.1", port, blue_url, files)
    yield port, files, (blue, blue_url)
    gateway_control.stop(files)
    blue.shutdown()


def test_requests_are_forwarded_with_their_body_and_status(gateway):
    port, files, (_, blue_url) = gateway
    response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"x": 1})
    assert response.status_code == 200
    assert response.json() == {"backend": "blue", "echo": {"x": 1}}
    assert gateway_control.status("127.0.0.1", port)["backend"] == blue_url


def test_a_malformed_request_is_a_4xx(gateway):
    port, _, _ = gateway
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 400")


def test_switching_backends_under_load_loses_no_request(gateway):
    port, files, (blue, blue_url) = gateway
    green, green_url = start_backend("green")
    results: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def client():
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:  # keep-alive connections
            while not stop.is_set():
                try:
                    response = http.post("/predict", json={"n": len(results)})
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text}")
                    else:
                        results.append(response.json()["backend"])
                except httpx.HTTPError as error:
                    errors.append(repr(error))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    gateway_control.switch("127.0.0.1", port, green_url, files)
    gateway_control.wait_drained("127.0.0.1", port, blue_url)
    blue.shutdown()  # the old backend goes away, as the old model service does
    blue.server_close()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join()
    green.shutdown()

    assert not errors, errors[:5]
    assert "blue" in results and results[-1] == "green"
    switched_at = results.index("green")
    assert len(results) > 50 and "blue" not in results[switched_at + 8 :]  # at most one in flight per client
