"""HEIF pictures, the HEIC photos iPhones take by default, read through pillow-heif's Pillow plugin.

`register()` adds the plugin to Pillow, once. Importing libheif's bindings
costs about 40 ms that most pictures never need, so `digits.read.load` calls
it only for bytes that `is_heif` recognises, and when a folder's pictures are
listed by suffix. Only the primary image is read: thumbnails, depth maps and
auxiliary images are left unparsed.

What a decode costs is counted in `load` like any other format's: libheif
gives no reduced decode, so a HEIF photo pays its full size (about 8 bytes a
pixel at the peak, measured: its decoded planes, their RGB conversion and
Pillow's copy). libheif refuses by itself a coded image larger than the size
its header declares (a 22 KB file declaring 64×64 and coding 6000×6000 is
refused before anything is allocated).

Only Pillow is imported here, and pillow-heif once registering.
"""

from __future__ import annotations

import functools

# The ISO media file's major brand (its `ftyp` box, bytes 8-12) for HEIF still images and sequences coded in
# HEVC, and the generic image brands phones also write (mif1, msf1). AVIF, the same container coded in AV1, is
# Pillow's own format: its brands are not here.
HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"})
# The suffixes cameras and exporters give HEIF files.
HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})


def is_heif(data: bytes) -> bool:
    """Whether these bytes begin an ISO media file of a HEIF brand (not AVIF, not an MP4 video)."""
    return data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS


@functools.cache
def register() -> None:
    """Add pillow-heif's plugin to Pillow (format name "HEIF"), reading primary images only, on one thread.

    libheif decodes a photo's tiles on 4 threads by default; the reader runs one process per core (`--workers`,
    the server's workers), each reading one picture at a time, so more threads would only contend for the cores.
    """
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False, decode_threads=1)
