"""Comment-to-buy, sans-I/O: the room's settings and what a comment says.

A buy comment is `<keyword> <code> [quantity] [variant words...]` (`SOLD 3 2 blue`), or a
product keyword standing for `<keyword> <code>` (`MUG 2 blue`). Matching is NFKC and
case-insensitive, so full-width letters and digits, `sold #3` and `SOLD 3` read the same, and
the decimal digits of every script are read as ASCII digits (`SOLD ٣ ٢` is `SOLD 3 2`). Anything
else is chat, and `parse_command` returns None for it. What the code and the words
refer to is resolved against the catalog in engine.features.comment_buy.store.
docs/comment-to-buy.md has the syntax with examples.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Annotated, Any

from msgspec import Meta, Struct

from engine.core.fields import invalid_field
from engine.core.identity import PRODUCT_ID_RE
from engine.rooms.comments import clean_text

DEFAULT_KEYWORD = "SOLD"
MAX_KEYWORD_CHARS = 40
MAX_PRODUCT_KEYWORDS = 50
# Longer comments that start with the keyword are sentences ("sold out so fast, ..."),
# not orders: they stay chat and get no reply.
MAX_COMMAND_WORDS = 12
QUANTITY_MARKERS = "x\u00d7"  # "x2", "2x", and with the multiplication sign

_SEPARATORS = re.compile(r"[\s,;、/|]+")
_KEYWORD = re.compile(r"[^\W_]+")  # one word of letters and digits, after folding
_INTEGER = re.compile(r"[+-]?\d+")
_MARKED = re.compile(rf"[{QUANTITY_MARKERS}](\d+)|(\d+)[{QUANTITY_MARKERS}]")
_MAX_DIGITS = 9  # beyond any limit; keeps int() of a pasted number string cheap
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")  # a decimal digit of another script: ٣, ३, ๓...


def _ascii_digit(match: re.Match[str]) -> str:
    return str(unicodedata.decimal(match.group()))


def fold(text: str) -> str:
    """The form every comparison uses: NFKC, case-folded, every decimal digit ASCII (a
    phone's Arabic-Indic or Devanagari keyboard types `٣` or `३` for 3)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return folded if folded.isascii() else _OTHER_DIGIT.sub(_ascii_digit, folded)


def _trim(token: str) -> str:
    """A word without the punctuation and emoji around it ("3!", "(42)", "blue🔥")."""
    start, end = 0, len(token)
    while start < end and not _wordish(token[start]):
        if token[start] in "+-" and token[start + 1 : start + 2].isdigit():
            break  # a signed number ("-1") keeps its sign, to be refused as a quantity
        start += 1
    while end > start and not _wordish(token[end - 1]):
        end -= 1
    return token[start:end]


def _wordish(ch: str) -> bool:
    return ch == "#" or unicodedata.category(ch)[0] in "LN"


def words(text: str) -> list[str]:
    """The folded words of a comment, emoji- and punctuation-only ones dropped."""
    found = (_trim(t) for t in _SEPARATORS.split(fold(clean_text(text))))
    return [w for w in found if w]


# ---- settings -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommentBuyConfig:
    """A room's comment-to-buy settings. Keywords keep the host's spelling for replies;
    comments match them folded."""

    enabled: bool = False
    keyword: str = DEFAULT_KEYWORD
    keywords: dict[str, str] = field(default_factory=dict)  # product keyword -> product id
    # Folded once: every comment of the room is checked against them.
    _folded: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded", {fold(k): p for k, p in self.keywords.items()})

    def to_wire(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "keyword": self.keyword, "keywords": dict(self.keywords)}

    def product_for(self, word: str) -> str | None:
        """The product a (folded) word is the keyword of."""
        return self._folded.get(word)


def _keyword(value: str, name: str) -> str:
    cleaned = unicodedata.normalize("NFKC", value).strip()
    if (
        not 0 < len(cleaned) <= MAX_KEYWORD_CHARS
        or not _KEYWORD.fullmatch(fold(cleaned))
        or fold(cleaned).isdigit()
    ):
        raise invalid_field(
            name, f"one word of 1-{MAX_KEYWORD_CHARS} letters or digits, not a number"
        )
    return cleaned


class CommentBuySettings(Struct, frozen=True, forbid_unknown_fields=True):
    """The host's settings as sent (the whole object; fields left out take their default)
    and as stored. `config()` applies the rules on the words; product ids are checked for
    form there and for existence by the store."""

    enabled: bool = False
    keyword: str = DEFAULT_KEYWORD
    # Product ids are checked one by one in `config()`, so a refusal names its keyword
    # (`keywords.MUG`), not the whole object.
    keywords: Annotated[dict[str, object], Meta(max_length=MAX_PRODUCT_KEYWORDS)] = {}

    def config(self) -> CommentBuyConfig:
        """The settings, keywords NFKC-normalized and trimmed, or `invalid_field` naming
        the first keyword or product id that breaks the rules."""
        keyword = _keyword(self.keyword, "keyword")
        seen = {fold(keyword)}
        keywords: dict[str, str] = {}
        for key, product in self.keywords.items():
            name = f"keywords.{key}"
            cleaned = _keyword(key, name)
            if fold(cleaned) in seen:
                raise invalid_field(name, "used twice (keywords compare without case)")
            if not isinstance(product, str) or not PRODUCT_ID_RE.fullmatch(product):
                raise invalid_field(name, "a product id such as 'p3'")
            seen.add(fold(cleaned))
            keywords[cleaned] = product
        return CommentBuyConfig(self.enabled, keyword, keywords)


# ---- comments -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """What a buy comment asks for, before the catalog is consulted.

    `code` is None for the keyword alone. `bare` is a number right after the code, in its
    spelling: the resolver reads it as a variant word when the product has one spelled so
    (a size `42`), else as the quantity. `quantity` is from a marker ("x2") when `marked`,
    else from `bare`; a marker and a `bare` that is no variant word give the quantity twice,
    as do two markers (`repeated_quantity`)."""

    code: str | None
    quantity: int | None = None
    marked: bool = False
    bare: str | None = None
    variant: tuple[str, ...] = ()
    repeated_quantity: bool = False
    keyword: str = DEFAULT_KEYWORD  # the room's keyword, as the host spells it, for replies


def _number(digits: str) -> int:
    """An integer from a digit string; absurdly long ones become a huge quantity."""
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    return sign * (10**_MAX_DIGITS if len(digits) > _MAX_DIGITS else int(digits))


def parse_command(text: str, config: CommentBuyConfig) -> Command | None:
    """The order a comment places, or None when it is just a comment."""
    found = words(text)
    if not found:
        return None
    first, rest = found[0], found[1:]
    keyword = fold(config.keyword)
    if first == keyword:
        code, after = (rest[0], rest[1:]) if rest else (None, [])
    elif first.startswith(keyword) and re.fullmatch(r"#?\d+", first[len(keyword) :]):
        code, after = first[len(keyword) :], rest  # "sold3": a missing space
    elif config.product_for(first) is not None:
        code, after = first, rest
    else:
        return None
    if len(after) > MAX_COMMAND_WORDS:
        return None
    marks = [m for m in (_MARKED.fullmatch(w) for w in after) if m]
    variant = [w for w in after if not _MARKED.fullmatch(w)]
    quantity: int | None = None
    bare: str | None = None
    if after and _INTEGER.fullmatch(after[0]):  # right after the code: a quantity or a size
        bare = variant.pop(0)
        quantity = _number(bare)
    if marks:
        quantity = _number(marks[0].group(1) or marks[0].group(2))
    return Command(
        code=code,
        quantity=quantity,
        marked=bool(marks),
        bare=bare,
        variant=tuple(variant),
        repeated_quantity=len(marks) > 1,
        keyword=config.keyword,
    )
