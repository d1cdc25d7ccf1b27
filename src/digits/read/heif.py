"""HEIF pictures, the HEIC photos iPhones take by default, read through pillow-heif's Pillow plugin.

`register()` adds the plugin to Pillow, once. Importing libheif's bindings
costs about 40 ms that most pictures never need, so `digits.read.load` calls
it only for bytes that `is_heif` recognises, and when a folder's pictures are
listed by suffix. Only the primary image is read: thumbnails, depth maps and
auxiliary images are left unparsed.

What a decode costs is counted in `load` like any other format's, with one
difference: the size Pillow is told (after the crop and turn the file asks
for) is not what libheif decodes. It decodes a grid of tiles whole before
cropping it, an alpha plane at its own size, and a grid or an overlay at the
size its own data gives, before comparing it with any declared size: a 2.4 KB
file shown as one pixel took 1.1 GB, a 455-byte overlay 3.2 GB.
`declared_sizes` reads, from the file's boxes, the size of every image it
declares (each `ispe` property) and the output size of every grid and overlay
(from its data, found through `iinf` and `iloc`), and the budget takes the
largest. libheif itself refuses a coded image larger than its declared size.

Only Pillow is imported here, and pillow-heif once registering.
"""

from __future__ import annotations

import functools
import struct
from collections import defaultdict
from collections.abc import Iterator
from typing import NamedTuple

from PIL import Image

from digits.errors import ImageError

# The ISO media file's major brand (its `ftyp` box, bytes 8-12) for HEIF still images and sequences coded in
# HEVC, and the generic image brands phones also write (mif1, msf1). AVIF, the same container coded in AV1, is
# not read (docs/reading.md, the decode budget).
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
# The boxes walked to the image sizes, and the most boxes one of them may hold: libheif reads at most 1000 items,
# each with a few properties; a file of millions of empty boxes would cost seconds to walk in Python.
_PROPERTIES_PATH = (b"meta", b"iprp", b"ipco")
_FULL_BOXES = {b"meta", b"ispe", b"iinf", b"iloc", b"iref"}  # a version and flags (4 bytes) before their content
MAX_HEIF_BOXES = 10_000
# Exif and XMP items, and a colour profile: a phone's take a few KiB, and opening the file copies them five times.
_METADATA = {b"Exif", b"mime"}
MAX_HEIF_METADATA_BYTES = 4 * 2**20
# A tile's HEVC configuration (its parameter sets): a few hundred bytes from a camera; libheif copies it per tile.
MAX_HEVC_CONFIG_BYTES = 64 * 1024
# What libheif holds beside Pillow's copy of a picture (its planes and their RGB copy), in bytes a pixel, by the
# chroma format of its HEVC configuration (0 grey, 1 4:2:0, 2 4:2:2, 3 4:4:4) and whether its samples take more
# than 8 bits (the luma's: the chroma's depth is not read; cameras give both one). Set from the peak of decodes of
# 3 to 24 megapixels, with Pillow's 4 bytes: a phone's 8-bit 4:2:0 took 7.3-8.0 in all, 4:2:2 8.3, 4:4:4 9.3; in
# 10 bits 4:2:0 7.8, and 4:2:2 13.3 and 4:4:4 15.3, which libheif converts through 16-bit RGB (a camera's HEIF:
# 20 megapixels of 10-bit 4:2:2 took 254 MiB); 8-bit grey 2.8 with Pillow's 1 (10-bit grey was not measured).
_CHROMA_FORMAT_AT, _LUMA_DEPTH_AT = 16, 17  # bytes into an `hvcC`: its chroma format, its luma's depth less 8
_DECODER_BYTES = {
    (0, False): 4.0,
    (1, False): 4.0,
    (2, False): 4.5,
    (3, False): 5.5,
    (0, True): 4.0,
    (1, True): 4.0,
    (2, True): 9.5,
    (3, True): 11.5,
}
# Items whose pixels libheif composes from other images, at an output size their own data gives: where in that
# data (after the version and flags, and an overlay's four 16-bit fill values) the size starts.
_DERIVED = {b"grid": 2 + 2, b"iovl": 2 + 8}


def is_heif(data: bytes) -> bool:
    """Whether these bytes begin an ISO media file of a HEIF brand (not AVIF, not an MP4 video)."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


@functools.cache
def register() -> None:
    """Add pillow-heif's plugin to Pillow (format name "HEIF"), reading primary images only, on one thread.

    Pillow's own plugins are set up first, so that they keep their turn (an AVIF of brand mif1 is Pillow's, and
    refused as AVIF). An application that registered pillow-heif itself keeps its own settings. libheif decodes
    a photo's tiles on 4 threads by default; the reader runs one process per core (`--workers`, the server's
    workers), each reading one picture at a time, so more threads would only contend for the cores.
    """
    Image.init()
    if "HEIF" in Image.OPEN:
        return
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False, decode_threads=1)


class Declared(NamedTuple):
    """What a HEIF file's header says its decode takes: the largest image it declares (`declared_sizes`), and
    the bytes a pixel libheif holds beside Pillow's copy of it (`_decoder_bytes_per_pixel`)."""

    size: tuple[int, int]
    decoder_bytes_per_pixel: float


def declared(data: bytes, name: str) -> Declared:
    """The price of decoding the HEIF file `data` (`Declared`), or an `ImageError` naming `name`."""
    properties = _properties(data, name)
    if not (sizes := declared_sizes(data, name, properties)):
        raise ImageError(f"{name}: the HEIF file declares no image size; it is damaged.")
    return Declared(max(sizes, key=lambda size: size[0] * size[1]), _decoder_bytes_per_pixel(data, properties))


def _decoder_bytes_per_pixel(data: bytes, properties: dict[bytes, list[tuple[int, int]]]) -> float:
    """What libheif holds per pixel for the costliest HEVC configuration (`hvcC`) in the file, by its chroma
    format and bit depth (`_DECODER_BYTES`); a file that lies in them is held by the child's cap
    (`digits.read.isolated`)."""
    prices = [
        _DECODER_BYTES[(data[start + _CHROMA_FORMAT_AT] & 3, data[start + _LUMA_DEPTH_AT] & 7 > 0)]
        for start, end in properties[b"hvcC"]
        if end - start > _LUMA_DEPTH_AT
    ]
    return max(prices, default=_DECODER_BYTES[(1, False)])


def declared_sizes(
    data: bytes, name: str, properties: dict[bytes, list[tuple[int, int]]] | None = None
) -> list[tuple[int, int]]:
    """The size (width, height) of every image the HEIF file `data` declares: its primary image, the tiles and
    grid it is made of, its alpha plane and the rest, and the output of each grid and overlay. An `ImageError`
    naming `name` if it holds more than `MAX_HEIF_BOXES` boxes in one, a grid or overlay without its data, or
    what would cost more to open than the file holds (`_refuse_costly_opening`).

    Where a file says two things of one item (two `infe` or `iloc` entries, a second `iinf`, `iloc` or `idat`),
    libheif believes the first: each is priced, so that the first is among them whichever it is."""
    types, places = _item_types(data, name), _item_places(data, name)
    properties = _properties(data, name) if properties is None else properties
    _refuse_costly_opening(data, name, types, places, properties)
    sizes = [struct.unpack_from(">II", data, start) for start, end in properties[b"ispe"] if end - start >= 8]
    for item, kind in sorted(types):
        if kind not in _DERIVED:
            continue
        if not places.get(item):
            raise ImageError(f"{name}: the HEIF file's {kind.decode()} item {item} has no data; it is damaged.")
        for extents in places[item]:
            description = b""
            for start, end in extents:  # the first bytes only: the extents may repeat the whole file
                description += data[start : min(end, start + 24)]
                if len(description) >= 24:
                    break
            wide = len(description) > 1 and description[1] & 1  # 32-bit sizes, else 16-bit
            fields = _Fields(description, _DERIVED[kind], len(description), name)
            sizes.append((fields.uint(4 if wide else 2), fields.uint(4 if wide else 2)))
    return sizes


def _refuse_costly_opening(
    data: bytes,
    name: str,
    types: set[tuple[int, bytes]],
    places: dict[int, list[list[tuple[int, int]]]],
    properties: dict[bytes, list[tuple[int, int]]],
) -> None:
    """Refuse what libheif and pillow-heif would pay for while opening the file, before any budget is checked:
    an image sequence (libheif built a table of 18 million samples from a 997-byte track: 2.35 GB), metadata or
    a colour profile over `MAX_HEIF_METADATA_BYTES` (each is copied about five times: 394 MB for 50 MB), and
    references that would copy more data than the file holds (pillow-heif copies an Exif item once for each
    reference to it: one of 1 MB, referred to 1,000 times, took 1.1 GB; libheif decodes a tile once for each
    time a grid names it, with its HEVC configuration: a 4 MB tile named 1,000 times took 6 s of CPU)."""
    if any(kind == b"moov" for kind, _, _ in _boxes(data, 0, len(data), name)):
        raise ImageError(f"{name}: a HEIF image sequence (a moving picture); digits reads still photos.")
    length = {
        item: max(sum(end - start for start, end in extents) for extents in found) for item, found in places.items()
    }
    metadata = [length.get(item, 0) for item, kind in types if kind in _METADATA]
    profiles = [end - start for start, end in properties[b"colr"]]
    if any(_holds_pictures(data, start, end, name) for start, end in properties[b"hvcC"]):
        raise ImageError(f"{name}: the HEIF file's HEVC configuration holds picture data; a camera's holds none.")
    if any(end - start > MAX_HEVC_CONFIG_BYTES for start, end in properties[b"hvcC"]):
        raise ImageError(
            f"{name}: the HEIF file's HEVC configuration is over {MAX_HEVC_CONFIG_BYTES // 1024} KiB; "
            "a photo's takes a few hundred bytes."
        )
    if max(metadata + profiles, default=0) > MAX_HEIF_METADATA_BYTES:
        raise ImageError(
            f"{name}: the HEIF file holds metadata or a colour profile over {MAX_HEIF_METADATA_BYTES // 2**20} MiB; "
            "a photo's take a few KiB."
        )
    copied = 0
    for start, end in _contents(data, (b"meta", b"iref"), name):
        id_size = 2 if data[start - 4] == 0 else 4  # after the box's version
        for kind, content, box_end in _boxes(data, start, end, name):
            fields = _Fields(data, content, box_end, name)
            referring, count = fields.uint(id_size), fields.uint(2)
            copied += length.get(referring, 0) * count
            if kind == b"dimg":  # each tile a grid names is decoded anew, however often it is named
                copied += sum(length.get(fields.uint(id_size), 0) for _ in range(min(count, MAX_HEIF_BOXES)))
            if copied > len(data):
                raise ImageError(
                    f"{name}: the HEIF file's items refer to others more than its data allows; it is damaged."
                )


def _properties(data: bytes, name: str) -> defaultdict[bytes, list[tuple[int, int]]]:
    """Where the content of each item property (`ipco`'s boxes) lies, by its type, from one walk of the file."""
    found: defaultdict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for start, end in _contents(data, _PROPERTIES_PATH, name):
        for kind, content, box_end in _boxes(data, start, end, name):
            found[kind].append((content + (4 if kind in _FULL_BOXES else 0), box_end))
    return found


def _holds_pictures(data: bytes, start: int, end: int, name: str) -> bool:
    """Whether the HEVC configuration (`hvcC`) in `data[start:end]` holds coded slices (NAL units of types 0-31),
    not parameter sets alone: libheif puts it before a tile's data each time the tile is decoded, so a tile can
    hide in it, priced at nothing (a 56 KB grid naming such a tile 992 times took 5 s of CPU)."""
    fields = _Fields(data, start + 22, end, name)  # after the profile, level and sizes
    for _ in range(fields.count(1)):
        nal_type = fields.uint(1) & 0x3F
        for _ in range(fields.count(2)):
            fields.take(fields.uint(2))
        if nal_type < 32:
            return True
    return False


def _item_types(data: bytes, name: str) -> set[tuple[int, bytes]]:
    """Each item and its type, as every `infe` entry (of version 2 or 3, the ones that name a type) gives it."""
    types = set()
    for start, end in _contents(data, (b"meta", b"iinf"), name):
        count_size = 2 if data[start - 4] == 0 else 4  # the entry count, after the box's version
        for kind, content, box_end in _boxes(data, start + count_size, end, name):
            if kind == b"infe" and content < box_end and data[content] in (2, 3):
                fields = _Fields(data, content + 4, box_end, name)
                item = fields.uint(2 if data[content] == 2 else 4)
                fields.uint(2)  # its protection
                types.add((item, fields.take(4)))
    return types


def _item_places(data: bytes, name: str) -> dict[int, list[list[tuple[int, int]]]]:
    """Where the data of each item may lie in `data`: the extents (start, end) of each `iloc` entry for it, in
    the file or in an `idat` box (construction method 1). An `ImageError` if the extents of all items add up to
    more than the file: pillow-heif reads every Exif and XMP item when it opens a file, and 100 of them, each
    listing one 256 KiB stretch 32 times, took 2.6 GB of a 292 KB file. Items' data never overlap."""
    idats = [start for start, _ in _contents(data, (b"meta", b"idat"), name)] or [0]
    found: dict[int, list[list[tuple[int, int]]]] = {}
    listed = 0
    for start, end in _contents(data, (b"meta", b"iloc"), name):
        version, fields = data[start - 4], _Fields(data, start, end, name)
        offset_size, length_size = divmod(fields.uint(1), 16)
        base_size, index_size = divmod(fields.uint(1), 16)
        index_size = index_size if version in (1, 2) else 0
        for _ in range(fields.count(2 if version < 2 else 4)):
            item = fields.uint(2 if version < 2 else 4)
            method = fields.uint(2) & 15 if version in (1, 2) else 0
            fields.uint(2)  # its data reference
            base = fields.uint(base_size)
            extents = []
            for _ in range(fields.count(2)):
                fields.uint(index_size)
                offset = base + fields.uint(offset_size)
                length = fields.uint(length_size) or max(0, len(data) - offset)  # 0: to the end of the file
                extents.append((offset, offset + length))
                listed += length
                if listed > len(data):
                    raise ImageError(
                        f"{name}: the HEIF file's items list more data than the file holds; it is damaged."
                    )
            origins = idats if method == 1 else [0]
            found.setdefault(item, []).extend([[(a + o, b + o) for a, b in extents] for o in origins])
    return found


class _Fields:
    """Big-endian fields read one after another from `data[at:end]`; an `ImageError` naming `name` past the end."""

    def __init__(self, data: bytes, at: int, end: int, name: str) -> None:
        self.data, self.at, self.end, self.name = data, at, min(end, len(data)), name
        self.entries = 0

    def take(self, size: int) -> bytes:
        if self.at + size > self.end:
            raise ImageError(f"{self.name}: a HEIF box ends inside its own fields; the file is damaged.")
        self.at += size
        return self.data[self.at - size : self.at]

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def count(self, size: int) -> int:
        """A count of entries to read next, held with those read before to `MAX_HEIF_BOXES`."""
        self.entries += (count := self.uint(size))
        if self.entries > MAX_HEIF_BOXES:
            raise ImageError(
                f"{self.name}: a HEIF box lists over {MAX_HEIF_BOXES:,} entries; no camera writes so many."
            )
        return count


def _contents(
    data: bytes, path: tuple[bytes, ...], name: str, start: int = 0, end: int | None = None
) -> Iterator[tuple[int, int]]:
    """Where the contents of the boxes at `path` (their types, from the top down) lie in `data`."""
    for kind, content, box_end in _boxes(data, start, len(data) if end is None else end, name):
        if kind == path[0]:
            content += 4 if kind in _FULL_BOXES else 0
            if len(path) == 1:
                yield content, box_end
            else:
                yield from _contents(data, path[1:], name, content, box_end)


def _boxes(data: bytes, start: int, end: int, name: str) -> Iterator[tuple[bytes, int, int]]:
    """The boxes between `start` and `end`: each one's type, where its content starts and where it ends. A box
    that runs past its container ends the walk (libheif refuses such a file)."""
    at, count = start, 0
    while at + 8 <= end:
        count += 1
        if count > MAX_HEIF_BOXES:
            raise ImageError(f"{name}: a HEIF box holds over {MAX_HEIF_BOXES:,} boxes; no camera writes so many.")
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1 and at + 16 <= end:  # a 64-bit size follows the type
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:  # the box runs to the end of its container
            size = end - at
        if size < header or at + size > end:
            return
        yield kind, at + header, at + size
        at += size
