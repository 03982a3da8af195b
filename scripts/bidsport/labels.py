"""Turn free-text values from users' tables into safe BIDS labels.

The rule (documented in the README): Unicode is folded to ASCII with NFKD
normalisation (``é`` → ``e``), characters that do not survive that (``ß``, CJK, …)
are transliterated to their Unicode code point in hex (``u00df``) so that different
inputs stay different, and every character that is not a letter or digit is dropped.
An input with nothing left is an error, never an empty label.
"""

from __future__ import annotations

import re
import unicodedata

_ALNUM = re.compile(r"[A-Za-z0-9]")


class LabelError(ValueError):
    """A value cannot be made into a BIDS label."""


def sanitize_label(value: object) -> str:
    """Return the BIDS label for ``value`` (letters and digits only).

    >>> sanitize_label("P-001/a")
    'P001a'
    >>> sanitize_label("Zürich 2")
    'Zurich2'
    """
    text = "" if value is None else str(value)
    out: list[str] = []
    for char in text:
        if _ALNUM.fullmatch(char):
            out.append(char)
            continue
        folded = unicodedata.normalize("NFKD", char)
        ascii_part = "".join(c for c in folded if _ALNUM.fullmatch(c))
        if ascii_part:
            out.append(ascii_part)
        elif char.isalnum():
            # A letter or digit with no ASCII form: keep it distinct, not dropped.
            out.append(f"u{ord(char):04x}")
    label = "".join(out)
    if not label:
        raise LabelError(f"{text!r} has no letters or digits to make a BIDS label from")
    return label

