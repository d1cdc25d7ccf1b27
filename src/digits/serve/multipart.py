"""The picture in a multipart/form-data body: its one file field `image`.

Contract. `image_field(body, content_type)` returns the bytes of the one file
in the field `image` of a whole body (the server has read it already, under
its size limit), or raises an `HTTPException` whose detail is one sentence:

  * 400: not valid multipart/form-data: no boundary, framing python-multipart
    refuses, a part without a `name`, more than `MAX_FILES` files or
    `MAX_FIELDS` fields, a field (not a file) over `MAX_FIELD_BYTES`, or a
    body the parser never finishes (it ends before CRLF "--boundary--",
    RFC 2046, or inside a part's headers): the parser drops a part the body
    never closes and says nothing, so a cut-off upload would read as a form
    without its picture;
  * 422: another content type, no file field `image` (absent, or a text
    field), or more than one.

The body is parsed by python-multipart's own parser, into memory: Starlette's
`Request.form()`, which wraps the same parser, spools every file into a
temporary file through an awaited write per chunk, and cost four fifths of
the parse: 170 µs of a 28×28 `/predict`'s 680 µs of CPU, against 25 µs here.
python-multipart walks some framing a byte at a time (spaces after a
delimiter cost 0.25 s per MiB), so the server parses a body over
`PARSE_ON_LOOP_BYTES` on a thread, not on its event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.exceptions import HTTPException

if TYPE_CHECKING:  # a type only python-multipart's annotations define
    from python_multipart.multipart import MultipartCallbacks

# As Starlette's `Request.form()` was called: a form with more is refused, not read.
MAX_FILES = 4
MAX_FIELDS = 16
MAX_FIELD_BYTES = 2**20
# A body this small is parsed on the event loop (a 28×28 PNG's is under 1 KiB; the worst framing costs 2 ms
# at this size); a bigger one on the decode thread.
PARSE_ON_LOOP_BYTES = 8 * 2**10

_WHERE = "send the picture as multipart/form-data, in a file field named 'image'."


def image_field(body: bytes, content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise HTTPException(422, _WHERE)
    boundary = options.get(b"boundary")
    if not boundary:
        raise _malformed("it names no boundary")
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        parser.write(body)
        parser.finalize()
    except FormParserError as err:  # its messages name a byte and its offset, nothing the client sent
        raise _malformed(f"{str(err).rstrip('.')}; check the boundary and the CRLF line endings") from None
    if body and not parts.ended:
        raise _malformed("it ends before its closing boundary")
    images = parts.images
    if not images or not images[0].is_file:
        raise HTTPException(422, _WHERE)
    if len(images) > 1:
        raise HTTPException(422, f"send one picture per request: the form has {len(images)} fields named 'image'.")
    return b"".join(images[0].data)


def _malformed(why: str) -> HTTPException:
    return HTTPException(400, f"the body is not valid multipart/form-data ({why}).")


class _Part:
    def __init__(self) -> None:
        self.disposition = b""
        self.name = b""
        self.is_file = False
        self.data: list[bytes] = []
        self.size = 0


class _Parts:
    """python-multipart's callbacks, collecting the parts of one body named `image` (the others are
    counted and checked, not kept)."""

    def __init__(self) -> None:
        self.images: list[_Part] = []
        self.part = _Part()
        self.files = self.fields = 0
        self.header_name = self.header_value = b""
        self.ended = False  # the parser reached the close delimiter

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.begin,
            "on_header_field": self.header_field,
            "on_header_value": self.header_value_chunk,
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.data,
            "on_part_end": self.end,
            "on_end": self.close,
        }

    def begin(self) -> None:
        self.part = _Part()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_name += data[start:end]

    def header_value_chunk(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        if self.header_name.lower() == b"content-disposition":
            self.part.disposition = self.header_value
        self.header_name = self.header_value = b""

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        if b"name" not in options:
            raise _malformed('a part\'s Content-Disposition gives no "name"')
        self.part.name = options[b"name"]
        self.part.is_file = b"filename" in options
        if self.part.is_file:
            self.files += 1
            if self.files > MAX_FILES:
                raise _malformed(f"it holds more than {MAX_FILES} files")
        else:
            self.fields += 1
            if self.fields > MAX_FIELDS:
                raise _malformed(f"it holds more than {MAX_FIELDS} fields")

    def data(self, data: bytes, start: int, end: int) -> None:
        self.part.size += end - start
        if not self.part.is_file and self.part.size > MAX_FIELD_BYTES:
            raise _malformed(f"a field other than a file is over {MAX_FIELD_BYTES // 2**20} MiB")
        if self.part.name == b"image":
            self.part.data.append(data[start:end])

    def end(self) -> None:
        if self.part.name == b"image":
            self.images.append(self.part)

    def close(self) -> None:
        self.ended = True
