"""One figure written to a PNG: the matplotlib set-up every report plot shares.

In: a PNG path and ``plt.subplots`` arguments. Out: the PNG, laid out tightly, written when the
``with`` block ends (headless: the Agg backend).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def saved_figure(out_png: str, **subplots) -> Iterator[tuple]:
    """Yield ``(figure, axes)``; save the figure to ``out_png`` and close it on leaving."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(**{"dpi": 120, **subplots})
    try:
        yield figure, axes
        figure.tight_layout()
        figure.savefig(out_png)
    finally:
        plt.close(figure)
