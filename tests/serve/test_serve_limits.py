"""The server at its limits: every connection state has a timer, idle connections count toward the cap.

Each test runs the real protocol (`http_server.GuardedProtocol` in uvicorn) in a thread of this process, on
loopback, with the limit under test made small; sockets get generous timeouts, and no test times the server.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from contextlib import contextmanager

import pytest

from digits.serve import admission
from digits.serve import app as serve
from digits.serve import listener as listening
from digits.serve import logs as serve_logs
from digits.serve import server as http_server

GENEROUS = 60.0  # seconds a socket waits for the server: far beyond any timer the tests configure


@pytest.fixture
def app():
    return serve.create_app()  # the shipped model: no training; one app per server, as its lifespan ends it


@contextmanager
def serving(app):
    """The app behind the guarded protocol on a free loopback port, in a thread; yields (port, uvicorn server)."""
    import uvicorn

    listener = listening.bind("127.0.0.1", 0)
    server = uvicorn.Server(http_server.guarded_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            thread.join(0.05)
        yield listener.getsockname()[1], server
    finally:
        server.should_exit = True
        thread.join(GENEROUS)
        listener.close()
        logging.captureWarnings(False)  # the server routed this process's warnings to its log


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=GENEROUS)


def read_answer(connection: socket.socket) -> bytes:
    """One answer with a Content-Length body, read exactly (the connection stays open)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += connection.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head


def read_to_close(connection: socket.socket) -> bytes:
    """Everything until the server closes the connection (a socket timeout fails the test)."""
    data = b""
    try:
        while chunk := connection.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_stray_crlf_after_an_answer_is_closed_by_a_timer(app, monkeypatch):
    monkeypatch.setattr(http_server, "HEADER_TIMEOUT", 0.2)
    monkeypatch.setattr(http_server, "KEEP_ALIVE", 3600)  # the header timer, not keep-alive's, must close it
    with serving(app) as (port, _), connect(port) as connection:
        connection.sendall(HEALTH)
        assert read_answer(connection).startswith(b"HTTP/1.1 200")
        connection.sendall(b"\r\n")  # uvicorn's keep-alive timer stops here; then silence
        assert b"did not arrive" in read_to_close(connection)


def test_a_body_byte_after_a_413_is_closed_by_a_timer(app, monkeypatch):
    monkeypatch.setattr(http_server, "HEADER_TIMEOUT", 0.2)
    monkeypatch.setattr(http_server, "KEEP_ALIVE", 3600)
    declared = admission.MAX_UPLOAD_BYTES + 1
    with serving(app) as (port, _), connect(port) as connection:
        connection.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
            b"Content-Length: %d\r\n\r\n" % declared
        )
        assert read_answer(connection).startswith(b"HTTP/1.1 413")
        connection.sendall(b"-")  # one byte of the refused body, then silence
        assert b"did not arrive" in read_to_close(connection)


def test_a_new_connection_among_many_idle_ones_has_its_grace(app, monkeypatch):
    """Past the cap, the oldest idle connection is closed only once it has waited IDLE_GRACE: a health check
    that arrives among a crowd of idle connections (accepted many at a time) is read before it can be the oldest."""
    monkeypatch.setattr(http_server, "HEADER_TIMEOUT", 3600)
    monkeypatch.setattr(http_server, "MAX_WAITING", 4)
    monkeypatch.setattr(http_server, "IDLE_GRACE", 3600)
    with serving(app) as (port, _):
        idle = [connect(port) for _ in range(10)]
        try:
            for connection in idle:
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
            probe = connect(port)
            idle.append(probe)
            probe.sendall(HEALTH)
            assert read_answer(probe).startswith(b"HTTP/1.1 200")
            for connection in idle[:10]:  # none was closed: all are within their grace
                connection.sendall(b"1\r\n\r\n")
                assert read_answer(connection).startswith(b"HTTP/1.1 200")
        finally:
            for connection in idle:
                connection.close()


@pytest.mark.parametrize("grace, room", [(0.3, 2048), (3600, 2)])
def test_past_the_cap_the_oldest_are_closed_after_their_grace_or_past_the_room(app, monkeypatch, grace, room):
    """Ten slow-header connections with room for four: the six oldest are closed, by the timer once their grace
    is over, or at once while more than GRACE_ROOM over the cap wait (then the rest when their grace is over:
    never here, it is an hour); the newest still serve."""
    monkeypatch.setattr(http_server, "HEADER_TIMEOUT", 3600)
    monkeypatch.setattr(http_server, "MAX_WAITING", 4)
    monkeypatch.setattr(http_server, "IDLE_GRACE", grace)
    monkeypatch.setattr(http_server, "GRACE_ROOM", room)
    with serving(app) as (port, _):
        idle = [connect(port) for _ in range(10)]
        try:
            for connection in idle:
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
            closed = 6 if room > 6 else 10 - 4 - room
            for connection in idle[:closed]:
                assert b"waited longest" in read_to_close(connection)
            for connection in idle[-4:]:
                connection.sendall(b"1\r\n\r\n")
                assert read_answer(connection).startswith(b"HTTP/1.1 200")
        finally:
            for connection in idle:
                connection.close()


def test_kept_alive_connections_count_toward_the_cap(app, monkeypatch):
    """With timers far away, only the cap can close the idle connections: the oldest go first."""
    monkeypatch.setattr(http_server, "HEADER_TIMEOUT", 3600)
    monkeypatch.setattr(http_server, "KEEP_ALIVE", 3600)
    monkeypatch.setattr(http_server, "MAX_WAITING", 4)
    monkeypatch.setattr(http_server, "IDLE_GRACE", 3600)  # no grace for a connection that has been answered
    with serving(app) as (port, _):
        idle = []
        try:
            for index in range(10):
                connection = connect(port)
                idle.append(connection)
                connection.sendall(HEALTH)
                assert read_answer(connection).startswith(b"HTTP/1.1 200")
                if index % 2:
                    connection.sendall(b"\r\n")  # half of them after a stray CRLF
            for connection in idle[:6]:  # the six oldest were closed to keep four
                assert b"waited longest" in read_to_close(connection)
            for connection in idle[6:]:  # the four newest still serve
                connection.sendall(HEALTH)
                assert read_answer(connection).startswith(b"HTTP/1.1 200")
        finally:
            for connection in idle:
                connection.close()


def test_an_answer_the_client_does_not_read_is_dropped(app, monkeypatch):
    """Pipelined requests for the page, never read: once the buffers fill, the write timer closes it."""
    import time

    monkeypatch.setattr(http_server, "WRITE_TIMEOUT", 0.2)
    with serving(app) as (port, server):
        connection = socket.socket()
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        connection.settimeout(GENEROUS)
        with connection:
            connection.connect(("127.0.0.1", port))
            connection.sendall(HEALTH)
            read_answer(connection)  # the server holds the connection now
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 500)  # megabytes of answers, none read
            deadline = time.monotonic() + GENEROUS  # a bound on a wait, not a measurement
            while server.server_state.connections and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not server.server_state.connections, "the server still holds the connection"


def test_a_thousand_warnings_stay_within_the_log_limit(app, monkeypatch):
    """Each request warns with a message of its own (no dedup by Python): the log keeps LOG_BURST lines.

    Pillow's warnings about damaged EXIF are silenced where pictures are decoded; any other library's
    warning on a request's path (NumPy's, a future Pillow's) must still go through the log and its limit."""
    import http.client
    import io
    import warnings

    decode = serve.load_image

    def warning_decode(data):
        warnings.warn(f"a warning of request {len(data)}-{next(count)}", UserWarning, stacklevel=1)
        return decode(data)

    count = iter(range(10**6))
    monkeypatch.setattr(serve, "load_image", warning_decode)  # on the path of a small PNG, on the event loop
    monkeypatch.setattr(serve_logs, "LOG_WINDOW", 3600)  # one window for the whole test
    log = io.StringIO()
    head, body = upload_request(small_png())
    with serving(app) as (port, _):
        [handler] = logging.getLogger("uvicorn").handlers
        handler.setStream(log)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GENEROUS)
        for _ in range(1000):
            connection.request("POST", "/predict", body, {"Content-Type": "multipart/form-data; boundary=x"})
            answer = connection.getresponse()
            assert answer.status == 200, log.getvalue()
            answer.read()
        connection.close()
        [limit] = handler.filters
        lines = log.getvalue().splitlines()
        assert "UserWarning" in log.getvalue()  # the warnings came through the log ...
        assert len(lines) <= serve_logs.LOG_BURST  # ... within its limit,
        assert limit._dropped >= 1000 - len(lines)  # and the rest were counted, not written


def wait_until(condition, what: str) -> None:
    """Poll `condition` (state the server reaches on its own), failing only after a generous bound."""
    import time

    deadline = time.monotonic() + GENEROUS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def upload_request(picture: bytes, declared: int | None = None) -> tuple[bytes, bytes]:
    """(head, body) of a POST /predict with `picture` in the field `image`; Content-Length `declared` if given."""
    body = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + picture + b"\r\n--x--\r\n"
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: %d\r\n\r\n" % (declared or len(body))
    )
    return head, body


def small_png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (28, 28), 0).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_exception_is_logged_on_one_line_with_the_line_that_raised_it():
    def failing():
        raise ValueError("bad\nvalue")

    try:
        failing()
    except ValueError:
        record = logging.LogRecord("digits", logging.ERROR, __file__, 1, "POST /predict failed", None, sys.exc_info())
    assert serve_logs.OneLineLogs().filter(record) and record.exc_info is None
    line = record.getMessage()
    assert "\n" not in line and line.startswith("POST /predict failed (ValueError: bad value at ")
    assert line.endswith(f"{__file__}:{failing.__code__.co_firstlineno + 1} in failing)")


def test_slow_uploads_do_not_lock_out_other_uploads(app):
    """64 uploads declaring the largest body, each stalled after 1 KiB: a new upload is still answered."""
    head, _ = upload_request(b"", declared=admission.MAX_UPLOAD_BYTES)
    with serving(app) as (port, _):
        slow = []
        try:
            for _ in range(64):
                connection = connect(port)
                connection.sendall(head + bytes(1024))
                slow.append(connection)
            wait_until(lambda: app.in_flight_bytes >= 64 * (admission.REQUEST_BYTES + 1024), "the uploads never began")
            with connect(port) as connection:
                connection.sendall(b"".join(upload_request(small_png())))
                assert read_answer(connection).startswith(b"HTTP/1.1 200")
        finally:
            for connection in slow:
                connection.close()


def test_admission_is_by_memory_many_small_few_large(app, monkeypatch):
    monkeypatch.setattr(admission, "IN_FLIGHT_BYTES", 3 * 2**20)
    small_head, small_body = upload_request(small_png())
    with serving(app) as (port, _):
        held = []
        try:
            # A hundred small requests at once, each stopped half-way through its body: all are admitted ...
            for _ in range(100):
                connection = connect(port)
                connection.sendall(small_head + small_body[:50])
                held.append(connection)
            wait_until(lambda: app.in_flight_bytes == 100 * (admission.REQUEST_BYTES + 50), "not all were admitted")
            for connection in held:
                connection.sendall(small_body[50:])
                assert read_answer(connection).startswith(b"HTTP/1.1 200")
            wait_until(lambda: app.in_flight_bytes == 0, "the small requests did not give their memory back")
            # ... but only two large ones: each holds 1.25 MiB of its 1.5 MiB so far.
            large_head, _ = upload_request(b"", declared=3 * 2**19)
            large = []
            for _ in range(2):
                connection = connect(port)
                connection.sendall(large_head + bytes(10 * 2**17))
                large.append(connection)
            held += large
            wait_until(
                lambda: app.in_flight_bytes == 2 * (admission.REQUEST_BYTES + 10 * 2**17), "the large ones stalled"
            )
            with connect(port) as third:
                third.sendall(large_head)
                answer = read_answer(third)
                assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in answer.lower()
            with connect(port) as connection:  # a small one still fits beside them
                connection.sendall(small_head + small_body)
                assert read_answer(connection).startswith(b"HTTP/1.1 200")
        finally:
            for connection in held:
                connection.close()


@pytest.mark.parametrize(
    "start",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ",  # a header value that never ends
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-",  # a header name that never ends
        # a chunked body's trailer that never ends, past the header deadline's reach
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: ",
    ],
)
def test_a_header_line_that_never_ends_is_refused_at_the_limit(app, start):
    """The parser grew such a line in memory until it ended: 60 MB in 10 s, /health held for 0.3 s and more."""
    with serving(app) as (port, _), connect(port) as connection:
        connection.sendall(start)
        sent = 0
        try:
            while sent < 64 * http_server.MAX_HEADER_BYTES:
                connection.sendall(b"a" * 4096)
                sent += 4096
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server, as it should be
        answer = read_to_close(connection)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"over 16 KiB" in answer


@pytest.mark.parametrize(
    "request_head",
    [
        b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"0" * 4300 + b"1\r\nConnection: close\r\n\r\na",
        b"POST /v2/models/digits/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: "
        + b"1" * 5000
        + b'\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{"inputs":[]}',
    ],
)
def test_a_byte_count_of_thousands_of_digits_is_a_json_400(app, request_head):
    """int() refuses strings of 4,301 digits and more: it was a 500, in plain text for Content-Length."""
    with serving(app) as (port, _), connect(port) as connection:
        connection.sendall(request_head)
        answer = read_to_close(connection)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]  # 400, or 422 for a body that is no form
    assert b"application/json" in answer


def test_an_upload_with_an_upgrade_header_is_answered_not_left_waiting(app):
    """`curl --http2` asks for h2c: the parser stopped at the headers, and the body never reached the app."""
    with serving(app) as (port, _):
        with connect(port) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            assert read_to_close(connection).startswith(b"HTTP/1.1 200")  # answered, then closed
        head, body = upload_request(small_png())
        head = head.replace(b"\r\n\r\n", b"\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 1)
        with connect(port) as connection:
            connection.sendall(head + body)
            answer = read_to_close(connection)
    assert answer.startswith(b"HTTP/1.1 400") and b"without an Upgrade header" in answer, answer[:300]
