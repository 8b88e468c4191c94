"""Where a manifest line's audio is: the one rule every reader and writer of NeMo manifests here follows.

In: the ``audio_filepath`` of a manifest line as written, and the path of the manifest that holds it.
Out: the audio file's path (:func:`audio_path`), or the ``audio_filepath`` to write when the line moves
into another manifest (:func:`rebased_path`).

The rule is NeMo's (``get_full_path`` in ``nemo/collections/common/parts/preprocessing/manifest.py``,
which its dataset loaders apply to every line): an absolute path names the file; a relative path is
relative to the folder that holds the manifest, whatever the current directory. NeMo also falls back to
the path as written (so to the current directory) when no file lies below the manifest's folder; this
package does not: a manifest means the same from every folder, and the checks
(:mod:`asr_transfer.manifests.checks`) report such a line as missing audio before NeMo is handed
anything. Readers hand NeMo the path :func:`audio_path` returns, never the string as written. NeMo's
function itself is not used: importing it costs seconds of NeMo's start-up, and the checks run first.
"""

from __future__ import annotations

import os


def manifest_folder(manifest: str | os.PathLike) -> str:
    """The absolute folder a manifest's relative audio paths are relative to."""
    return os.path.dirname(os.path.abspath(manifest))


def audio_path(reference: str, manifest: str | os.PathLike) -> str:
    """The audio file a line of ``manifest`` names with ``reference`` (its ``audio_filepath``): as written
    when absolute, else below the manifest's folder (an absolute path, whatever the current directory)."""
    reference = str(reference)
    if os.path.isabs(reference):
        return reference
    return os.path.normpath(os.path.join(manifest_folder(manifest), reference))


def rebased_path(reference: str, manifest: str | os.PathLike, new_manifest: str | os.PathLike) -> str:
    """The ``audio_filepath`` a line of ``manifest`` must have in ``new_manifest`` to name the same file:
    an absolute path as written; a relative one rewritten relative to the new manifest's folder (unchanged
    when both manifests share a folder)."""
    reference = str(reference)
    if os.path.isabs(reference):
        return reference
    old, new = manifest_folder(manifest), manifest_folder(new_manifest)
    if old == new:
        return reference
    return os.path.relpath(os.path.join(old, reference), new)


def rebased_entry(entry: dict, manifest: str | os.PathLike, new_manifest: str | os.PathLike) -> dict:
    """``entry`` (a parsed line of ``manifest``) as a line of ``new_manifest``: :func:`rebased_path`."""
    if "audio_filepath" not in entry:
        return entry
    return {**entry, "audio_filepath": rebased_path(entry["audio_filepath"], manifest, new_manifest)}
