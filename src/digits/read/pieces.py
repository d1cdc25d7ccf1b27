"""Step 5 of finding the writing: which pieces of a thresholded mask are writing.

`writing_pieces` labels a mask's 8-connected pieces and drops what is not writing: blobs as thick as
they are long (a shadow, a desk, a shirt, a blot), a wedge at the picture's edge, a sheet's shaded rim,
soft-edged shade beside crisp writing (`digits.read.shade`), and specks. `digits.read.ink` calls it on
every mask it thresholds; it returns the labels kept and each label's area (0 where dropped).
"""

from __future__ import annotations

import numpy as np

from digits.read.geometry import cut_sides, wedge_at_edge
from digits.read.normalize import crop_to_ink
from digits.read.shade import REGION_EXTENT, soft_shade
from digits.spec import Box

# A component whose thickest point spans this fraction of its length is a blob, not a stroke: a disc
# spans 1.0. MNIST's strokes are 0.08-0.17 of the digit's size; marker strokes reach 0.3, twice that
# where strokes cross, and a bold 8 whose loops closed up is two discs stacked (about 0.6).
_BLOB_THICKNESS = 0.75
# ...and so is a region that runs into the picture's border (a shadow, a desk, a shirt: they go on
# beyond it) thicker than this fraction of the picture's shorter side: the boldest real strokes
# measured (a 28x28 paint-program digit) reach 0.17.
_BLOB_SIZE = 0.22
# ...unless it is the largest ink there is and fills less than this share of its box: a tight crop of
# a bold digit runs into the border as thick as a shadow does, but a shadow or a desk fills its box.
_STROKE_FILL = 0.5
# A piece whose pixels in the sheet's rim (`sheet.sheet_rim`, along the table) run for at least this
# share of its extent lies along the sheet's edge...
_ALONG_RIM = 0.5
# ...and when it is at least this many times as thick as the writing's strokes (once they are known),
# and this share of the picture's shorter side, it is the rim's shade or a curl: a digit's strokes are
# as thick as the writing's, twice that where they cross. A ruled line or a table's frame is thinner,
# and the rules (`digits.read.rules`) take it out whole.
_RIM_STROKES = 3.0
_RIM_THICKNESS = 0.03
# A piece smaller than this share of the largest piece of writing is a speck beside it.
_SPECK = 0.01


def writing_pieces(
    mask: np.ndarray,
    edges: Box | None = None,
    rim: np.ndarray | None = None,
    stroke: float = 0.0,
    ink: np.ndarray | None = None,
    drawn: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: 8-connected components (strokes touch at corners); blobs and specks dropped.

    Writing is made of strokes: thin compared with the shape they draw. A
    region as thick as it is long is not writing but something dark lying
    across the picture: a shadow, a desk or a shirt beyond the paper's edge,
    a blot. Those go first, so that they neither count as ink nor make the
    real strokes look like specks beside them. One dropped only for its thickness at the border
    is kept when it is the largest ink and does not fill its box: a bold digit cropped at its ink.
    The border is the picture's (`edges`, in the mask's pixels) when a margin was added round it.
    So go a wedge at the picture's edge (`geometry.wedge_at_edge`: the desk beyond a turned or
    slanted page) and, on a sheet lying on a table, a thick piece along the sheet's `rim` (its shade).
    Given the lightly smoothed `ink`, so does a large piece with soft edges beside crisp writing
    (`shade.soft_shade`), before specks are told from writing. A piece that fills its box is solid, a
    blob, unless it stands upright in a `drawn` (clean) picture: there a line tool draws a 1 so.
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    areas[0] = 0
    if not count:
        return labels, areas
    dropped = np.zeros(count + 1, dtype=bool)
    bold_at_border = np.zeros(count + 1, dtype=bool)  # dropped only for its thickness at the border, not solid
    frames = np.zeros(count + 1, dtype=bool)
    edges = edges or (0, 0, mask.shape[1], mask.shape[0])
    shortest = min(mask.shape)  # with a margin too: a 1 cut at its ink is a picture as narrow as its stroke
    boxes = ndimage.find_objects(labels, max_label=count)
    for label, (rows, cols) in enumerate(boxes, start=1):
        sides = cut_sides((cols.start, rows.start, cols.stop, rows.stop), edges)
        if any(sides) and wedge_at_edge(labels[rows, cols] == label, sides):
            dropped[label] = True
            continue
        extent = max(rows.stop - rows.start, cols.stop - cols.start)
        if extent < REGION_EXTENT * shortest:
            continue  # too small to be a shadow or a desk; specks are dealt with below
        at_border = any(sides)
        limit = min(_BLOB_THICKNESS * extent, _BLOB_SIZE * shortest if at_border else np.inf)
        # Unpadded on purpose: a region cut by the picture's border goes on beyond it (a desk, a shadow), and
        # is measured as if the border were its middle; one that fills its box is solid, a blob. So goes a
        # ruled line across a page, or a table's rule in a photo, before it joins the writing it crosses or
        # reads as a 1. In a drawn picture, though, an upright stroke inside it that fills its box is what a
        # line tool draws for a 1 (which went as a blob): it is measured with paper round its box. A flat one
        # stays solid: an underline, which the underline rule would not always find (2 of 40 generated
        # underlined digits more were misread).
        region = labels[rows, cols] == label
        upright = rows.stop - rows.start > cols.stop - cols.start
        measured = np.pad(region, 1) if drawn and upright and not at_border else region
        if (
            rim is not None
            and (along := region & rim[rows, cols]).any()
            and max(crop_to_ink(along).shape) >= _ALONG_RIM * extent
            and 2 * float(ndimage.distance_transform_edt(region).max())
            >= max(_RIM_STROKES * stroke, _RIM_THICKNESS * shortest)
        ):
            dropped[label] = True  # it lies along the sheet's edge: the rim's shade, a curl, not writing
            continue
        # The taxicab distance is never below the Euclidean one and costs a tenth of it: a
        # stroke thin even by that measure is kept without the exact transform.
        if measured.all() or 2 * float(ndimage.distance_transform_cdt(measured, "taxicab").max()) >= limit:
            thickness = 2 * float(ndimage.distance_transform_edt(measured).max())
            dropped[label] = thickness >= limit
            bold_at_border[label] = (
                dropped[label] and thickness < _BLOB_THICKNESS * extent and region.mean() < _STROKE_FILL
            )
        frames[label] = at_border and extent >= 0.5 * max(edges[2] - edges[0], edges[3] - edges[1])
    boldest = int(np.argmax(np.where(bold_at_border, areas, 0)))
    if bold_at_border[boldest] and areas[boldest] > areas[~dropped].max(initial=0):
        dropped[boldest] = False
    least = (min(mask.shape) / 300) ** 2 * 4  # a smaller piece is a speck, whatever is beside it
    if ink is not None:
        dropped[soft_shade(ink, labels, np.where(dropped, 0, areas), _SPECK, least, boxes)] = True
    kept = areas[~dropped]
    if kept.any():
        # A speck is small beside the writing; a frame or scanner border running into the
        # picture's edge is not writing, and beside it a thin 1 would pass for a speck.
        reference = areas[~dropped & ~frames]
        min_area = max((reference if reference.any() else kept).max() * _SPECK, least)
        dropped |= areas < min_area
    dropped[0] = False
    if dropped.any():  # the usual clean crop drops nothing: no pass over every pixel
        labels[dropped[labels]] = 0
    areas[dropped] = 0
    return labels, areas
