"""Numbers in HTTP headers: the byte counts a request states.

HTTP writes a count as 1*DIGIT, so leading zeros are allowed and the parser
bounds neither them nor the digits; Python's int() refuses strings of 4,301
digits and more (a ValueError that was a 500). `byte_count` reads any of them.
"""

from __future__ import annotations

# More significant digits than any byte count this server takes.
_COUNT_DIGITS = 18


def byte_count(digits: str) -> int:
    """The byte count an all-ASCII-digit header value states, leading zeros allowed; a value of more than
    `_COUNT_DIGITS` significant digits counts as 10**_COUNT_DIGITS, past every limit."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _COUNT_DIGITS else 10**_COUNT_DIGITS
