"""When pieces make a number: the steadiness test, whose nudged copies are ndimage's transforms and
which asks for fewer of them without changing an outcome, and the lines read beside numbers."""

import numpy as np
from scipy import ndimage

from digits.read import reader as reader_module
from digits.read.pipeline import Prepared, Segment, Segmented
from digits.read.reader import Digit, Line, Reader, _Verdict
from digits.read.refusal import _linear_nudges, line_digits, nudged, one_doubt_at_most, steady
from digits.spec import NO_DIGIT, OK, UNSURE


def digit(value: int | None, status: str, left: int = 0, confidence: float = 0.95) -> Digit:
    """A digit 30 px tall and 20 wide, `left` px from the picture's edge."""
    return Digit(value, confidence, (), (left, 0, left + 20, 30), status)


def test_beside_numbers_a_line_may_hold_unsure_digits_but_not_be_one_digit():
    sure_and_unsure = [
        digit(4, OK, confidence=1.0),
        digit(7, UNSURE, 30, confidence=0.65),
        digit(1, OK, 60, confidence=1.0),
        digit(2, UNSURE, 90, confidence=0.65),
    ]
    assert line_digits(sure_and_unsure) is None  # alone, two digits in doubt are too many
    assert line_digits(sure_and_unsure, beside_numbers=True) == sure_and_unsure
    # Beside numbers too, a line's digits must be confident on average (less than alone).
    doubtful = [digit(4, OK, confidence=0.7), digit(7, UNSURE, 30, confidence=0.45)]
    assert line_digits(doubtful, beside_numbers=True) is None
    for lone in ([digit(5, OK)], [digit(5, UNSURE)], [digit(5, OK), digit(None, NO_DIGIT, 30)]):
        assert line_digits(lone, beside_numbers=True) is None  # a mark at the edge, a corner of the desk
    assert line_digits([digit(5, OK)]) == [digit(5, OK)]
    # The rules that are about shapes, not about the model's certainty, still hold.
    too_wide = [digit(4, OK), Digit(7, 0.95, (), (30, 0, 130, 30), UNSURE)]
    full_height_refused = [digit(4, OK), digit(7, UNSURE, 30), digit(None, NO_DIGIT, 60)]
    assert line_digits(too_wide, beside_numbers=True) is None
    assert line_digits(full_height_refused, beside_numbers=True) is None


def test_alone_a_line_of_three_digits_or_more_may_hold_one_in_doubt():
    """An unsure digit, or a refused piece of full height the model is not sure is none (read as its likeliest
    digit, unsure): a number of unseen writers was lost whole for one doubtful digit."""
    one_unsure = [digit(4, OK, confidence=1.0), digit(7, UNSURE, 30, confidence=0.45), digit(1, OK, 60, confidence=1.0)]
    assert line_digits(one_unsure) == one_unsure
    assert line_digits(one_unsure[:2]) is None, "a line of two with one in doubt is half doubt"
    doubtful = Digit(None, 0.6, ((8, 0.35), (3, 0.05), (0, 0.0)), (30, 0, 50, 30), NO_DIGIT)
    sure_refusal = Digit(None, 0.95, ((8, 0.03), (3, 0.01), (0, 0.0)), (30, 0, 50, 30), NO_DIGIT)
    others = [digit(4, OK, confidence=1.0), digit(1, OK, 60, confidence=1.0), digit(5, OK, 90, confidence=1.0)]
    read = line_digits([others[0], doubtful, *others[1:]])
    assert read is not None and [(d.digit, d.status) for d in read] == [(4, OK), (8, UNSURE), (1, OK), (5, OK)]
    assert line_digits([others[0], sure_refusal, *others[1:]]) is None
    assert line_digits([others[0], doubtful, others[1], digit(5, UNSURE, 90, confidence=0.9)]) is None, "two doubts"
    assert line_digits([others[0], doubtful, others[1]]) is not None, "the doubt is not averaged in: counted once"
    mediocre = [digit(4, OK, confidence=0.7), digit(7, UNSURE, 30, confidence=0.45), digit(1, OK, 60, confidence=0.85)]
    assert line_digits(mediocre) is None, "the digits not in doubt average 0.775"
    assert line_digits([others[0], doubtful]) is None


def test_a_line_is_measured_level_when_its_sizes_are_given():
    """A tilted line's digits have wide upright boxes; turned level (`Segment.level_size`) they are digit-shaped."""
    leaning = [Digit(d, 0.99, (), (60 * k, 0, 60 * k + 50, 30), OK) for k, d in enumerate((7, 3, 0))]
    assert line_digits(leaning) is None  # 50 wide against 30 tall: wider than a digit
    assert line_digits(leaning, sizes=[(20, 30)] * 3) == leaning


def test_three_ones_closer_than_digits_are_written_are_tally_marks():
    def ones(pitch: int) -> list[Digit]:
        return [Digit(1, 0.99, (), (pitch * k, 0, pitch * k + 4, 40), OK) for k in range(4)]

    assert line_digits(ones(10)) is None  # 0.25 of their height apart: hatching
    assert line_digits(ones(14)) is not None  # 0.35 apart
    assert line_digits(ones(10)[:2]) is not None  # two 1s are a number, however close
    climbing = [Digit(1, 0.99, (), (10 * k, 10 * k, 10 * k + 4, 10 * k + 40), OK) for k in range(4)]
    assert line_digits(climbing, sizes=[(4, 40)] * 4) is not None  # 0.35 apart along a line tilted 45 degrees


def test_beside_numbers_a_doubtful_refusal_of_full_height_is_read_as_its_likeliest_digit():
    def refused(sure_it_is_none: float, left: int, height: int = 30) -> Digit:
        return Digit(None, sure_it_is_none, ((8, 0.3), (3, 0.1), (0, 0.05)), (left, 0, left + 20, height), NO_DIGIT)

    six_doubt_four = [digit(6, OK, confidence=1.0), refused(0.6, 30), digit(4, OK, 60, confidence=1.0)]
    # Alone, a refused piece of full height stops a line of two; in one of three, it is the line's one doubt.
    assert line_digits(six_doubt_four[:2]) is None
    assert line_digits([*six_doubt_four, digit(1, UNSURE, 90, confidence=0.45)]) is None, "two doubts"
    read = line_digits(six_doubt_four, beside_numbers=True)
    assert read is not None and [d.digit for d in read] == [6, 8, 4]
    assert (read[1].status, read[1].confidence, read[1].box) == (UNSURE, 0.3, (30, 0, 50, 30))
    # A piece the model is sure is no digit still stops the line, and a small one (a dash) is still left out.
    assert line_digits([*six_doubt_four[:1], refused(0.95, 30), six_doubt_four[2]], beside_numbers=True) is None
    dash = [six_doubt_four[0], refused(0.6, 30, height=10), six_doubt_four[2]]
    assert [d.digit for d in line_digits(dash, beside_numbers=True) or []] == [6, 4]
    # Read so, it counts toward the line's mean confidence, and it never makes a lone digit a number.
    assert line_digits([digit(6, UNSURE, confidence=0.4), *six_doubt_four[1:]], beside_numbers=True) is None
    assert line_digits([digit(5, OK, confidence=1.0), refused(0.7, 30)], beside_numbers=True) is None


ROW = (30.0, (0, 0, 150, 30))  # a line of writing: its pieces' median height, its box


def test_a_page_that_holds_numbers_keeps_its_lines_that_read_beside_them():
    def line(text: str) -> Line:
        return Line(tuple(digit(int(c), OK, 30 * k) for k, c in enumerate(text)), (0, 0, 30 * len(text), 30))

    passed = _Verdict(line("58221"), passed=True, alone=True, beside=True)
    beside = _Verdict(line("97"), passed=False, alone=False, beside=True)
    neither = _Verdict(line("1"), passed=False, alone=False, beside=False)
    page = Reader._page([passed, beside, neither], writing=[ROW] * 2, whole=None)
    assert page.text == "58221\n97"
    # Lines that only read beside numbers are no numbers on their own: junk stays refused.
    assert Reader._page([beside, beside, neither], writing=[ROW] * 3, whole=None).text == ""
    # Too few of the lines of writing pass `line_digits` on their own: the picture gives none.
    assert Reader._page([passed, beside, beside], writing=[ROW] * 3, whole=None).text == ""
    # A line that passes `line_digits` but flipped when nudged counts toward the half, never alone.
    unsteady = _Verdict(line("364"), passed=False, alone=True, beside=True)
    assert Reader._page([passed, unsteady, beside], writing=[ROW] * 3, whole=None).text == "58221\n364\n97"
    assert Reader._page([unsteady, unsteady, beside], writing=[ROW] * 3, whole=None).text == ""
    # A form: a label beside each number, a line of its own level with it, written less than half as tall,
    # does not count against the numbers; small lines elsewhere (a texture's strokes) do.
    form, label, elsewhere = [passed] * 3, (10.0, (-200, 10, -100, 20)), (10.0, (0, 100, 100, 110))
    assert Reader._page(form, writing=[ROW, label] * 3 + [elsewhere], whole=None).text == "58221\n58221\n58221"
    assert Reader._page(form, writing=[ROW] * 3 + [elsewhere] * 4, whole=None).text == ""
    # Strokes strewn over a texture: two numbers of 1s, and three more lines of 1s beside them, are no page.
    ones, ones_beside = (_Verdict(line("11"), passed=p, alone=p, beside=True) for p in (True, False))
    assert Reader._page([ones, ones, ones_beside], writing=[ROW] * 3, whole=None).text == "11\n11\n11"
    assert Reader._page([ones, ones] + [ones_beside] * 3, writing=[ROW] * 5, whole=None).text == ""


def test_nudged_copies_are_ndimages_transforms(mnist):
    _, (x_test, _) = mnist
    images = (x_test[:16] / np.float32(255)).astype(np.float32)
    copies = nudged(images)
    assert copies.shape == (16, 10, 28, 28) and copies.dtype == np.float32
    linear = np.stack(_linear_nudges(images), axis=1)  # shifts, turns, zooms, straight from ndimage
    np.testing.assert_allclose(copies[:, [0, 1, 2, 3, 4, 5, 8, 9]], linear, atol=1e-6)
    np.testing.assert_array_equal(copies[:, 6], ndimage.grey_dilation(images, size=(1, 2, 2)))
    np.testing.assert_array_equal(copies[:, 7], ndimage.grey_erosion(images, size=(1, 2, 2)))
    # A shift by two pixels moves the ink and nothing else.
    np.testing.assert_allclose(copies[:, 0, 2:], images[:, :-2], atol=1e-6)


def test_steady_asks_for_fewer_copies_and_answers_as_all_ten_would(mnist):
    """A stand-in model whose answer depends on each copy's ink gives digits settled by eight copies and open ones."""
    _, (x_test, _) = mnist
    images = (x_test[:300] / np.float32(255)).astype(np.float32)
    readings = np.arange(len(images)) % 3  # the reading each image's copies must keep
    asked = []

    def answer(batch):
        """Per copy: 0, 1 or 2 by its ink, and for some copies "not a digit" (column 10) above it."""
        ink = batch.reshape(len(batch), -1).sum(axis=1)
        return (ink * 5).astype(int) % 3 * (ink > 100), (ink * 13).astype(int) % 7 == 0

    def classify(batch):
        asked.append(len(batch))
        best, refused = answer(batch)
        probabilities = np.full((len(batch), 11), 0.01, np.float32)
        probabilities[np.arange(len(batch)), best] = 0.8
        probabilities[refused, 10] = 0.9
        return probabilities

    copies = nudged(images)
    best, refused = answer(copies.reshape(-1, 28, 28))
    kept = ((best == np.repeat(readings, 10)) & ~refused).reshape(len(images), 10)
    first_eight = kept[:, :8].sum(axis=1)
    still_open = (first_eight >= 6) & (first_eight < 8)
    assert still_open.any() and (first_eight == 8).any() and (first_eight < 6).any()
    assert refused.any() and (kept.sum(axis=1) >= 8).any()

    answers = steady(classify, images, list(readings))
    np.testing.assert_array_equal(answers, kept.sum(axis=1) >= 8)
    assert asked == [8 * len(images), 2 * still_open.sum()], "the last two copies only for the digits left open"


def test_decide_pages_keeps_lines_beside_numbers_and_marks_their_doubtful_digits(monkeypatch):
    """A stand-in model and steadiness test: each piece's image says what the model and the nudges make of it."""
    # piece -> (digit, confidence, steady when nudged)
    pieces = {1: (5, 0.99, True), 2: (8, 0.99, True), 3: (1, 0.99, True), 4: (2, 0.99, True)}
    pieces |= {5: (9, 0.98, False), 6: (7, 0.99, True), 7: (1, 0.98, False), 8: (4, 0.99, True)}
    pieces |= {9: (5, 0.99, True), 10: (3, 0.98, True), 11: (6, 0.45, True), 12: (4, 0.99, True)}
    pieces |= {13: (7, 0.99, True), 14: (7, 0.45, True), 15: (10, 0.6, True)}  # 15: refused, not surely

    def image(piece: int) -> np.ndarray:
        marked = np.zeros((28, 28), np.float32)
        marked[0, 0] = piece
        return marked

    def classify(images: np.ndarray) -> np.ndarray:
        rows = np.zeros((len(images), 11), np.float32)
        for row, picture in zip(rows, images, strict=True):
            digit, confidence, _ = pieces[int(picture[0, 0])]
            row[digit] = confidence
            row[(digit + 1) % 10] = min(1 - confidence, confidence / 2)  # the runner-up
        return rows

    def steady(classify, images, readings):
        asked = [pieces[int(picture[0, 0])] for picture in images]
        assert all(confidence < 0.99 for _, confidence, _ in asked), "a digit beyond doubt is not nudged"
        return np.array([kept for _, _, kept in asked])

    def page(*lines: list[int]) -> Segmented:
        return Segmented(
            [
                [Segment((30 * k, 40 * n, 30 * k + 20, 40 * n + 30), image(p)) for k, p in enumerate(line)]
                for n, line in enumerate(lines)
            ],
            Prepared(np.zeros((28, 28), np.float32), has_ink=False),
        )

    reader = Reader()
    monkeypatch.setattr(reader, "classify", classify)
    monkeypatch.setattr(reader_module, "steady", steady)
    pages = reader.decide_pages(
        [
            page([1, 2], [3, 4], [5, 6], [7]),  # two numbers; "97" whose 9 flips; a lone 1 that flips
            page([8, 9], [10, 11, 12]),  # a number; "364" whose 6 is unsure
            page([13, 14]),  # only a line with an unsure digit: no number passed every test
            page(),
            page([5, 6, 2], [13, 14]),  # "978" whose 9 alone flips: still a number, and "77" comes beside it
            page([5, 7, 6]),  # "917" whose 9 and 1 flip: no number
            page([5, 6]),  # "97" whose 9 flips, alone on its page: half the line in doubt, no number
            page([1, 11, 2]),  # "568" whose 6 alone is unsure: one digit in doubt in three, a number
            page([5, 11, 2]),  # "968" whose 9 flips and 6 is unsure: two in doubt, no number
            page([1, 15, 2, 4]),  # a doubtful refusal is the one doubt of "5?82": read as its likeliest digit, 1
        ]
    )
    assert [p.text for p in pages] == ["58\n12\n97", "45\n364", "", "", "978\n77", "", "", "568", "", "5182"]
    statuses = [[d.status for d in line.digits] for p in pages for line in p.lines]
    assert statuses == [
        [OK, OK],
        [OK, OK],
        [UNSURE, OK],
        [OK, OK],
        [OK, UNSURE, OK],
        [UNSURE, OK, OK],
        [OK, UNSURE],
        [OK, UNSURE, OK],
        [OK, UNSURE, OK, OK],
    ]


def test_a_page_asks_for_its_picture_read_whole_only_when_its_one_number_is_one_digit(monkeypatch):
    """A stand-in model reads each image's mark as a sure digit. The picture read whole is made for the pages
    whose only number is one digit, asked in one call after the pieces, and the digit stands only when it agrees."""
    calls: list[int] = []
    made: list[int] = []

    def image(value: int) -> np.ndarray:
        marked = np.zeros((28, 28), np.float32)
        marked[0, 0] = value
        return marked

    def classify(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        rows = np.zeros((len(images), 11), np.float32)
        rows[np.arange(len(images)), images[:, 0, 0].astype(int)] = 1.0
        return rows

    def whole(value: int | None):
        def make() -> Prepared:  # None: a picture whose one digit, read whole, is no ink
            made.append(value)
            return Prepared(image(value or 0), has_ink=value is not None, box=(0, 0, 20, 30))

        return make

    def page(*lines: list[int], reads_whole: int | None) -> Segmented:
        segments = [
            [Segment((30 * k, 40 * n, 30 * k + 20, 40 * n + 30), image(v)) for k, v in enumerate(line)]
            for n, line in enumerate(lines)
        ]
        return Segmented(segments, whole(reads_whole))

    reader = Reader()
    monkeypatch.setattr(reader, "classify", classify)
    pages = reader.decide_pages(
        [
            page([5, 8], [3, 5], reads_whole=2),
            page([5], reads_whole=5),
            page([8], reads_whole=3),
            page([8], reads_whole=None),
        ]
    )
    assert [p.text for p in pages] == ["58\n35", "5", "", ""]
    assert made == [5, 3, None], "two numbers need no picture read whole"
    assert calls == [7, 2], "the pieces in one call, then the readable pictures read whole in one more"


def test_one_digit_alone_may_be_in_doubt_in_a_line_of_three_or_more():
    flags = np.array
    assert one_doubt_at_most(flags([True, True]))
    assert not one_doubt_at_most(flags([True, False])), "a line of two with one in doubt"
    assert one_doubt_at_most(flags([True, False, True]))
    assert not one_doubt_at_most(flags([False, True, False, True])), "two in doubt"
    assert not one_doubt_at_most(flags([False])), "a lone digit that flips"
