"""Sentences from the small grammars in the language files.

In: a language's ``grammar`` block (templates with ``{slot}`` fields, word lists per slot, sentence
endings) and a seeded random generator. Out: distinct, capitalized, punctuated sentences such as a
Common Voice prompt, varied enough that a model has to learn letters rather than memorize sentences.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from asr_transfer.errors import UserError

_SLOT = re.compile(r"\{(\w+)\}")


class GrammarError(UserError):
    pass


def expand(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    def fill(match: re.Match) -> str:
        name = match.group(1)
        if name not in slots:
            raise GrammarError(
                f"template {template!r} names slot {name!r}, which the grammar lacks; add the slot to the language file"
            )
        return str(rng.choice(slots[name]))

    return _SLOT.sub(fill, template)


def sentences(grammar: dict, rng: random.Random, max_tries_per_sentence: int = 200) -> Iterator[str]:
    """Yield distinct sentences forever (until the grammar runs out of new ones)."""
    templates, slots = grammar["templates"], grammar["slots"]
    endings = grammar.get("end", ["."])
    seen: set[str] = set()
    while True:
        for _ in range(max_tries_per_sentence):
            body = expand(rng.choice(templates), slots, rng)
            if body not in seen:
                break
        else:
            return
        seen.add(body)
        yield body[:1].upper() + body[1:] + rng.choice(endings)


def vocabulary(grammar: dict) -> set[str]:
    """Every word the grammar can produce, for checking that it is large enough."""
    words = set()
    for template in grammar["templates"]:
        words.update(_SLOT.sub(" ", template).split())
    for options in grammar["slots"].values():
        for option in options:
            words.update(str(option).split())
    return words
