"""``inherit:``, the one way a YAML file (a fine-tuning config, a language file) builds on another.

In: a file's parsed mapping and a function that finds and loads the file an ``inherit:`` value names.
Out: the parent's mapping with the child's keys laid over it: mappings are merged key by key, anything
else (a value, a list) is replaced. The parent may inherit in turn; a file that inherits itself, directly
or through others, is a :class:`~asr_transfer.errors.UserError`.
"""

from __future__ import annotations

from collections.abc import Callable

from asr_transfer.errors import UserError

INHERIT_KEY = "inherit"


def overlay(parent: dict, child: dict) -> dict:
    """``child`` laid over ``parent`` (neither is changed): nested mappings merge, other values replace."""
    merged = dict(parent)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolve_inherit(
    raw: dict,
    source: str,
    load_parent: Callable[[str, str], tuple[dict, str]],
    not_inherited: tuple[str, ...] = (),
    chain: tuple[str, ...] = (),
) -> dict:
    """``raw`` (read from ``source``) with its ``inherit:`` resolved. ``load_parent(name, source)`` returns
    the named parent's raw mapping and where it was read from; that mapping may itself inherit. Keys in
    ``not_inherited`` are the file's own (a language file's test ``cases``) and are not taken from a parent."""
    raw = dict(raw)
    parent_name = raw.pop(INHERIT_KEY, None)
    if not parent_name:
        return raw
    parent, parent_source = load_parent(str(parent_name), source)
    if parent_source in chain or parent_source == source:
        cycle = " -> ".join([*chain, source, parent_source])
        raise UserError(f"inherit: makes a cycle ({cycle}); remove one of the inherit: lines")
    resolved = resolve_inherit(parent, parent_source, load_parent, not_inherited, (*chain, source))
    for key in not_inherited:
        resolved.pop(key, None)
    return overlay(resolved, raw)
