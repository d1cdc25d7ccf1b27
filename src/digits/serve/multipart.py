"""Whether a multipart/form-data body ended with its close delimiter.

Contract. `CloseDelimiter(content_type)` is fed the body's chunks as they
stream by (`feed`) and says at the end whether the body was cut off
(`cut_off`): a multipart/form-data body that ends before CRLF "--boundary--"
(RFC 2046), and is not that delimiter alone (a form of no parts). The
multipart parser drops a part the body never closes and reports nothing, so
without this a cut-off upload would read as a form without its picture.
It keeps a few bytes of the body, whatever its size; a delimiter split
across two chunks is found. Any other content type is never cut off.
"""

from __future__ import annotations

from python_multipart.multipart import parse_options_header


class CloseDelimiter:
    def __init__(self, content_type: str):
        kind, options = parse_options_header(content_type)
        boundary = options.get(b"boundary", b"") if kind == b"multipart/form-data" else b""
        self.close = b"--" + boundary + b"--" if boundary else b""
        self._needle = b"\r\n" + self.close
        self._head = self._tail = b""  # the body's first bytes; the last few of what came
        self._seen = False

    def feed(self, body: bytes) -> None:
        if not self.close or not body or self._seen:
            return
        if len(self._head) < len(self.close):
            self._head = (self._head + body)[: len(self.close)]
        keep = len(self._needle) - 1
        self._seen = self._needle in body or self._needle in self._tail + body[:keep]
        self._tail = (self._tail + body[-keep:])[-keep:]

    @property
    def cut_off(self) -> bool:
        return bool(self.close and self._head) and not (self._seen or self._head == self.close)
