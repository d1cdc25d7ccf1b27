"""A number written on a printed form: the labels beside and above it are print, not digits.

Built from MNIST's test digits (three times their size) and Pillow's own font at a label's size,
as a form holds them.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from digits.read.reader import Digit, Reader
from digits.read.refusal import line_digits, written_smaller
from digits.spec import NO_DIGIT, OK, UNSURE

NUMBERS = ["532", "24673", "5025"]


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def form(mnist, labels: list[str], beside: bool, size: int, column: int | None = None, title: str = "") -> bytes:
    """A JPEG of `NUMBERS` written by hand, each after its label printed `size` px high (`beside`) or under it;
    with `column`, each number starts there (a form's two columns); with a `title` printed over them all."""
    _, (x_test, y_test) = mnist
    font = ImageFont.load_default(size=size)
    page = Image.new("L", (900, 120 * len(NUMBERS) * (1 if beside else 2) + (100 if title else 0)), 250)
    draw = ImageDraw.Draw(page)
    top = 30
    if title:
        draw.text((40, top), title, font=ImageFont.load_default(size=round(1.4 * size)), fill=10)
        top += 100
    for label, number in zip(labels, NUMBERS, strict=True):
        glyphs = 255 - np.hstack([x_test[np.flatnonzero(y_test == int(d))[2]] for d in number])
        written = Image.fromarray(glyphs).resize((glyphs.shape[1] * 3, 84), Image.Resampling.BICUBIC)
        if beside:
            draw.text((40, top + 30), label, font=font, fill=20)
            left = column or 60 + int(draw.textlength(label, font=font))
        else:
            draw.text((40, top), label, font=font, fill=20)
            top, left = top + 50, 60
        page.paste(
            Image.fromarray(np.minimum(np.asarray(page.crop((left, top, left + written.width, top + 84))), written)),
            (left, top),
        )
        top += 120
    buffer = io.BytesIO()
    page.convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("labels", [["Student ID:", "Score:", "Room:"], ["Age:", "Sum:", "Grade:"]])
def test_a_label_printed_before_a_number_is_not_part_of_it(reader, mnist, labels):
    """Its letters are half as tall as the handwriting or less: the "I" of "Student ID:" read as a 1
    and came first in the number, and the "m" of "Sum:" as a 5."""
    assert reader.read_page(form(mnist, labels, beside=True, size=40)).text == "\n".join(NUMBERS)


def test_a_label_near_its_number_is_left_out_where_it_holds_letters(reader, mnist):
    """ "Total:" 20 px from its number, nearer than twice the number's own gaps: its "l" read as a 1 came
    first in the number. Refused letters as tall beside it ("Tota") make it a word."""
    page = form(mnist, ["Total:", "Invoice no.", "Phone:"], beside=True, size=38)
    assert reader.read_page(page).text == "\n".join(NUMBERS)


def test_a_forms_title_and_labels_apart_from_their_numbers_do_not_outvote_them(reader, mnist):
    """Labels in a column of their own, far enough from the numbers to be lines of their own, and a title:
    seven lines of writing, three of them numbers. Fewer than half: the page was refused whole."""
    page = form(mnist, ["Gas:", "Rice:", "Bread:"], beside=True, size=40, column=460, title="Stock count")
    assert reader.read_page(page).text == "\n".join(NUMBERS)


def test_labels_printed_over_numbers_are_not_numbers_beside_them(reader, mnist):
    """A page that holds numbers takes its other lines with less (unsure digits), but not lines written
    less than half as tall as its numbers: "Score"'s letters made a number, "50018"."""
    page = form(mnist, ["Student ID", "Score", "Room"], beside=False, size=34)
    assert reader.read_page(page).text == "\n".join(NUMBERS)


def tall(value: int | None, left: int, height: int, status: str = OK) -> Digit:
    return Digit(value, 0.95, (), (left, 60 - height, left + 20, 60), status)


def test_only_pieces_at_a_lines_ends_half_as_tall_as_its_digits_and_set_apart_are_left_out():
    label = [tall(5, 0, 25), tall(1, 25, 25)]
    number = [tall(5, 80, 60), tall(3, 110, 58), tall(2, 140, 60)]  # 10 px apart
    assert line_digits(label + number) == number
    assert line_digits(number + [tall(7, 200, 20)]) == number  # a speck well after it
    near = number + [tall(0, 170, 28)]  # a small digit written as near as the others: part of the number
    assert line_digits(near) == near
    small_zeros = [tall(5, 80, 60), tall(0, 110, 40), tall(2, 140, 60), tall(0, 170, 36)]
    assert line_digits(small_zeros) == small_zeros  # a line's own digits are written alike, if not the same
    assert line_digits([tall(1, 0, 25), tall(4, 50, 60)]) == [tall(1, 0, 25), tall(4, 50, 60)]  # two: which is it?
    refused_between = [tall(5, 0, 25), tall(None, 25, 25, NO_DIGIT)] + number
    assert line_digits(refused_between) == number
    # Near the number, a small digit goes only with refused letters as tall beside it (a word)...
    word = [tall(None, 40, 25, NO_DIGIT), tall(1, 62, 25)] + number
    assert line_digits(word) == number
    # ...not with a smaller refused piece (a 5's detached bar): that is the number's own first digit.
    bar = [tall(5, 45, 28), tall(None, 66, 6, NO_DIGIT)] + number
    assert line_digits(bar) == bar[:1] + number


def test_what_is_cut_off_with_a_small_end_must_be_small_too():
    """A refused piece of full height beyond a small end keeps the line whole, and it fails as before;
    the end that was not trimmed keeps what it had (a review's cases)."""
    number = [tall(5, 80, 60), tall(3, 110, 58), tall(2, 140, 60)]
    blocked = [tall(None, 0, 60, NO_DIGIT), tall(1, 40, 25)] + number
    assert line_digits(blocked) is None
    assert line_digits([tall(None, 0, 60, NO_DIGIT)] + number + [tall(7, 200, 20)]) is None


def test_a_trimmed_line_is_tested_for_steadiness_with_its_own_images(monkeypatch):
    """`decide_pages` nudges each kept digit's own image: with a line's small end left out, the images
    of every later digit in the call were one off (a review's case, where a batch of pictures is one call)."""
    from digits.read.pipeline import Prepared, Segment, Segmented
    from digits.read.reader import Reader

    reader = Reader()
    pieces = [(5, 0, 25, 0.99), (3, 80, 60, 0.9), (2, 110, 60, 0.9), (8, 140, 60, 0.9)]
    images = [np.full((28, 28), k / 10, np.float32) for k in range(len(pieces))]
    line = [Segment((x, 60 - h, x + 20, 60), image) for image, (_, x, h, _) in zip(images, pieces, strict=True)]
    probabilities = np.zeros((len(pieces), 11), np.float32)
    for k, (value, _, _, confidence) in enumerate(pieces):
        probabilities[k, value], probabilities[k, 10] = confidence, 1 - confidence
    monkeypatch.setattr(reader, "classify", lambda stack: probabilities[[round(float(i[0, 0]) * 10) for i in stack]])
    asked = []

    def steady(predict, stack, digits):
        asked.extend((round(float(image[0, 0]) * 10), digit) for image, digit in zip(stack, digits, strict=True))
        return np.ones(len(digits), bool)

    monkeypatch.setattr("digits.read.reader.steady", steady)
    whole = Prepared(image=images[1], has_ink=True, box=(0, 0, 160, 60), steps=[])
    [page] = reader.decide_pages([Segmented(lines=[line], whole=whole)])
    assert page.text == "328"
    assert asked == [(1, 3), (2, 2), (3, 8)]  # image k holds k / 10


def test_a_line_beside_numbers_is_print_when_less_than_half_as_tall():
    numbers = [[tall(5, 80, 60), tall(3, 110, 58)]]
    assert written_smaller([tall(1, 0, 25, UNSURE), tall(7, 30, 28, UNSURE)], numbers)
    assert not written_smaller([tall(1, 0, 40, UNSURE), tall(7, 30, 38, UNSURE)], numbers)
