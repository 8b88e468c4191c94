"""``asr-transfer bases [fetch NAME | path NAME]``: the base-model catalog, and where a base is found.

In: a base name of ``asr_transfer/bases.yaml`` (or a Hugging Face id ``owner/name``). Out: the path of
its ``.nemo``, looked for in this order: the repository's shipped file, the Hugging Face cache, NeMo's
NGC cache, then a download (Hugging Face first, then the NGC URL, with a progress bar) into the cache.
A name that resolves nowhere is one error that says what each place answered: not in the catalog,
not cached, offline, or the HTTP status. A download of a base whose catalog entry has a ``sha256`` is
checked against it, and a mismatch refused. ``bases`` lists the catalog: each base's class, vocabulary,
parameters, download size, source (Hugging Face repository or NGC URL) and where it is cached;
``bases fetch NAME`` downloads one base (for clusters whose compute nodes have no network).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from asr_transfer.errors import UserError

CATALOG_PATH = Path(__file__).with_name("bases.yaml")
REPO_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "ASR_TRANSFER_OFFLINE")


class BaseModelUnavailable(UserError):
    pass


@dataclass(frozen=True)
class Base:
    name: str
    model_class: str = ""
    architecture: str = ""
    vocabulary: dict | None = None
    parameters: str = ""
    huggingface: dict | None = None
    ngc: dict | None = None
    shipped: str | None = None
    size: str | None = None  # download size as the hub's file listing shows it, e.g. "459 MB"
    sha256: str | None = None  # published checksum of the .nemo, checked after a download
    sources: tuple = ()  # public pages the entry's facts were read from

    @property
    def source(self) -> str:
        """Where the base comes from: its Hugging Face repository, else its NGC URL, else the shipped file."""
        if self.huggingface:
            return f"huggingface.co/{self.huggingface['repo']}" + (" (+NGC)" if self.ngc else "")
        if self.ngc:
            return self.ngc["url"]
        return f"shipped: {self.shipped}" if self.shipped else "-"

    @property
    def file_name(self) -> str:
        if self.huggingface:
            return self.huggingface["file"]
        if self.ngc:
            return self.ngc["url"].rsplit("/", 1)[-1]
        return f"{self.name}.nemo"


@cache
def catalog() -> dict[str, Base]:
    with open(CATALOG_PATH, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    return {
        name: Base(name=name, model_class=fields.pop("class", ""), sources=tuple(fields.pop("sources", ())), **fields)
        for name, fields in raw.items()
    }


def lookup(name: str) -> Base:
    """The catalog entry of ``name`` (or of the Hugging Face repository it names). A Hugging Face id
    outside the catalog is taken as ``owner/name`` holding ``name.nemo``, as NeMo publishes them."""
    bases = catalog()
    if name in bases:
        return bases[name]
    for base in bases.values():
        if base.huggingface and base.huggingface["repo"] == name:
            return base
    if "/" in name:
        return Base(name=name, huggingface={"repo": name, "file": f"{name.rsplit('/', 1)[-1]}.nemo"})
    raise BaseModelUnavailable(
        f"{name!r} is not in the base catalog ({CATALOG_PATH}); its names: {', '.join(bases)}. Give one of "
        "them, a Hugging Face id such as nvidia/stt_de_conformer_ctc_large, or a local .nemo file"
    )


def offline_reason() -> str | None:
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").lower() in ("1", "true", "yes", "on"):
            return f"offline ({variable}={os.environ[variable]})"
    return None


def shipped_file(base: Base) -> tuple[Path | None, str]:
    if not base.shipped:
        return None, "not shipped with this repository"
    path = REPO_ROOT / base.shipped
    return (path, "") if path.is_file() else (None, f"{path} is missing from this install")


def hf_cached_file(base: Base) -> tuple[Path | None, str]:
    if not base.huggingface:
        return None, "not on the Hugging Face hub"
    from huggingface_hub import constants, try_to_load_from_cache

    found = try_to_load_from_cache(base.huggingface["repo"], base.huggingface["file"], cache_dir=constants.HF_HUB_CACHE)
    if isinstance(found, str) and os.path.isfile(found):
        return Path(found), ""
    return None, f"not in the cache {constants.HF_HUB_CACHE}"


def ngc_cache_dir(base: Base) -> Path:
    """NeMo keeps an NGC download as ``<cache>/<file stem>/<subfolder>/<file>``; we download there too."""
    from nemo.utils.data_utils import resolve_cache_dir

    return Path(resolve_cache_dir()) / base.file_name.removesuffix(".nemo")


def ngc_cached_file(base: Base) -> tuple[Path | None, str]:
    folder = ngc_cache_dir(base)
    found = sorted(path for path in folder.glob(f"*/{base.file_name}") if path.is_file())
    return (found[0], "") if found else (None, f"not in NeMo's cache {folder}")


def describe_download_error(error: BaseException) -> str:
    """Why a download failed, in words a user can act on: offline, or the HTTP status."""
    import urllib.error

    from huggingface_hub import errors as hub_errors

    if isinstance(error, hub_errors.OfflineModeIsEnabled):
        return "offline (HF_HUB_OFFLINE is set)"
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None) or getattr(error, "code", None)
    if isinstance(error, urllib.error.HTTPError) or isinstance(status, int):
        return f"HTTP {status}"
    if (
        isinstance(error, (urllib.error.URLError, ConnectionError, OSError))
        or "connect" in type(error).__name__.lower()
    ):
        reason = getattr(error, "reason", None) or error
        return f"offline: no connection ({str(reason).splitlines()[0][:160]})"
    return f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def verify_download(base: Base, path: Path) -> Path:
    """``path`` when its sha256 is the catalog's (or the catalog publishes none); else the error that says so.
    A mismatched file is left where it is, for the user to inspect or delete."""
    if base.sha256:
        found = file_sha256(path)
        if found != base.sha256:
            raise BaseModelUnavailable(
                f"the download of {base.name} ({path}) has sha256 {found}, not the {base.sha256} the catalog "
                f"records ({CATALOG_PATH}); the file is damaged or the hub holds a new version: delete it and "
                "fetch again, and if it still differs, check the hub's file page and update the catalog"
            )
    return path


def download_hf(base: Base) -> Path:
    from huggingface_hub import hf_hub_download

    return verify_download(base, Path(hf_hub_download(base.huggingface["repo"], base.huggingface["file"])))


def download_ngc(base: Base) -> Path:
    """Stream the NGC URL into NeMo's cache with a progress bar; a partial file never takes the final name."""
    import urllib.request

    from tqdm import tqdm

    from asr_transfer.fileio import atomic_path

    target = ngc_cache_dir(base) / str(base.ngc.get("version", "download")) / base.file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(base.ngc["url"], timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with atomic_path(target) as partial, open(partial, "wb") as handle:
            with tqdm(total=total, unit="B", unit_scale=True, desc=base.file_name) as bar:
                while block := response.read(1 << 20):
                    handle.write(block)
                    bar.update(len(block))
    return verify_download(base, target)


def resolve(name: str, download: bool = True) -> Path:
    """The local ``.nemo`` of base ``name``: shipped file, Hugging Face cache, NeMo's cache, download."""
    base = lookup(name)
    tried: list[str] = []
    for place, find in (
        ("shipped", shipped_file),
        ("Hugging Face cache", hf_cached_file),
        ("NeMo NGC cache", ngc_cached_file),
    ):
        path, why = find(base)
        if path:
            return path
        tried.append(f"{place}: {why}")
    for place, source, fetch in (
        ("Hugging Face download", base.huggingface, download_hf),
        ("NGC download", base.ngc, download_ngc),
    ):
        if not source:
            continue
        why = offline_reason() or ("" if download else "downloads not asked for")
        if not why:
            try:
                return fetch(base)
            except BaseModelUnavailable:
                raise  # a checksum mismatch: another source would not make the file right
            except Exception as error:  # network stacks raise many types; each is described, none hidden
                why = describe_download_error(error)
        tried.append(f"{place}: {why}")
    raise BaseModelUnavailable(
        f"base {name!r} was found nowhere ({'; '.join(tried)}); run `asr-transfer bases fetch {base.name}` where "
        "there is network, or give a local .nemo file"
    )


def where_cached(base: Base) -> str:
    for find in (shipped_file, hf_cached_file, ngc_cached_file):
        path, _ = find(base)
        if path:
            return str(path)
    return "-"


def shipped_checksum(base: Base) -> str | None:
    """A shipped base's sha256, from the provenance JSON its recipe wrote beside it."""
    path, _ = shipped_file(base)
    provenance = path.with_suffix(".provenance.json") if path else None
    if provenance and provenance.is_file():
        with open(provenance, encoding="utf-8") as handle:
            return json.load(handle).get("sha256")
    return base.sha256


def download_size(base: Base) -> str:
    """The catalog's download size; a shipped base's is its file's; ``?`` where none is known."""
    if base.size:
        return base.size
    path, _ = shipped_file(base)
    return f"{path.stat().st_size / 1e6:.1f} MB" if path else "?"


def print_catalog(out=None) -> None:
    """One row per base: name, class, architecture, vocabulary, parameters, download size, source (Hugging
    Face repository, else NGC URL, else the shipped file) and where it is cached (``-``: not cached)."""
    out = out or sys.stdout
    header = ("name", "class", "architecture", "vocabulary", "parameters", "size", "source", "found at")
    rows = [header]
    for base in catalog().values():
        vocabulary = base.vocabulary or {}
        rows.append(
            (
                base.name,
                base.model_class.rsplit(".", 1)[-1],
                base.architecture,
                f"{vocabulary.get('kind') or '?'} {vocabulary.get('size') or '?'}",
                str(base.parameters or "?"),
                download_size(base),
                base.source,
                where_cached(base),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer bases",
        description="List the base models the recipes know (asr_transfer/bases.yaml): class, vocabulary, "
        "parameters, download size, source (Hugging Face repository or NGC URL) and where each is cached; fetch "
        "one into the cache; print the .nemo a name resolves to.",
        epilog="A name resolves through the shipped file, the Hugging Face cache, NeMo's NGC cache, then a "
        "download (Hugging Face, then NGC). HF_HUB_OFFLINE=1 or ASR_TRANSFER_OFFLINE=1 forbids downloads.",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=("list", "fetch", "path"),
        default="list",
        help="list (the default): every base, its source and size, and where it is cached; fetch NAME: download "
        "it into the cache and check its sha256 where the catalog records one; path NAME: print the .nemo it "
        "resolves to, downloading nothing",
    )
    parser.add_argument("name", nargs="?", help="a catalog name, for fetch and path")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.action == "list":
        print_catalog()
        return 0
    if not args.name:
        parser.error(f"{args.action} needs a NAME; `asr-transfer bases` lists them")
    path = resolve(args.name, download=args.action == "fetch")
    if args.action == "fetch":
        base = lookup(args.name)
        if base.sha256:  # a cached file too: fetch is what users run before copying a base to a cluster
            verify_download(base, path)
            print(f"{args.name}: {path} (sha256 {base.sha256}, as the catalog records)")
        else:
            checksum = shipped_checksum(base)
            print(f"{args.name}: {path}" + (f" (sha256 {checksum})" if checksum else ""))
    else:
        print(path)
    return 0
