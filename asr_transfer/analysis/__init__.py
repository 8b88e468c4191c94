"""Looking at finished runs: ``report`` (curves and RESULTS.md of the demo and domain recipes),
``introspect`` (per-layer weight change against the base) and ``provenance`` (what a shipped model is)."""
