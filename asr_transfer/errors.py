"""The one exception type for problems the user can fix, and the one place that reports it.

In: nothing; modules raise :class:`UserError` (or a subclass) where a problem is first known, with a
message of the form ``<what is wrong>; <what to do>``. Out: the console script
(:func:`asr_transfer.cli.main`, and :func:`run_tool` for the scripts under tools/) prints it as one
``error:`` line and exits with status 2. Any other exception is a bug in this package and keeps its
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem with the user's input, config or environment that the message says how to fix."""


class InputError(UserError):
    """A named input (file, folder, archive) is missing, empty or unreadable."""


class ManifestError(InputError):
    """A NeMo manifest is missing, empty, not JSON lines, lacks a field or points at unreadable audio."""


def run_tool(main: Callable[[], int | None]) -> int:
    """A tool script's exit status: ``main()``'s, or :data:`USER_ERROR_EXIT` after one ``error:`` line for
    a :class:`UserError` (``sys.exit(run_tool(main))`` under ``if __name__ == "__main__"``)."""
    try:
        return main() or 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR_EXIT
