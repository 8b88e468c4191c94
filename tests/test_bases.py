"""The base catalog: names resolve through seeded Hugging Face and NeMo NGC caches without network, and
each way of failing has its own message."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asr_transfer.bases import REPO_ROOT, BaseModelUnavailable, catalog, lookup, resolve
from asr_transfer.cli import main as cli_main
from asr_transfer.training.models import restore_pretrained
from tests.conftest import run_recipe_process

SHIPPED_EN = REPO_ROOT / "recipes/en_base/model/en_tiny_quartznet_char.nemo"
SHIPPED_ZH = REPO_ROOT / "recipes/zh_base/model/zh_tiny_quartznet_char.nemo"


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """Empty Hugging Face and NeMo caches, and no network: downloads are forbidden."""
    import huggingface_hub.constants as hub_constants

    hub, nemo = tmp_path / "hf_hub", tmp_path / "nemo_cache"
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NEMO_CACHE_DIR", str(nemo))
    return hub, nemo


def seed_hf_cache(hub: Path, repo: str, file_name: str, source: Path) -> Path:
    """The layout huggingface_hub writes: models--owner--name/{refs/main, snapshots/<commit>/<file>}."""
    folder = hub / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123456789abcdef")
    os.link(source, snapshot / file_name)
    return snapshot / file_name


def seed_ngc_cache(nemo: Path, file_name: str, source: Path) -> Path:
    """The layout NeMo's from_pretrained writes: <cache>/<stem>/<md5 of url and description>/<file>."""
    target = nemo / file_name.removesuffix(".nemo") / "9f0e2d1c3b4a59687766554433221100" / file_name
    target.parent.mkdir(parents=True)
    os.link(source, target)
    return target


def test_catalog_names_every_base_the_recipes_use():
    names = set(catalog())
    for needed in (
        "stt_en_quartznet15x5",
        "stt_en_conformer_ctc_small",
        "stt_en_conformer_ctc_medium",
        "stt_en_conformer_ctc_large",
        "stt_en_fastconformer_ctc_large",
        "stt_zh_citrinet_512",
        "stt_zh_citrinet_1024_gamma_0_25",
        "en_tiny_quartznet_char",
        "zh_tiny_quartznet_char",
        "en_tiny_fastconformer_bpe128",
    ):
        assert needed in names
    for base in catalog().values():
        assert base.model_class.startswith("nemo.collections.asr.models.") and base.vocabulary["kind"] in (
            "char",
            "bpe",
        )
        assert base.huggingface or base.ngc or base.shipped
        if base.shipped:
            assert (REPO_ROOT / base.shipped).is_file()
    conf = REPO_ROOT / "recipes" / "conf"
    for config in conf.glob("*.yaml"):
        pretrained = __import__("yaml").safe_load(config.read_text()).get("init", {}).get("pretrained")
        if pretrained:
            assert lookup(pretrained).name in names, config


def test_seeded_hf_and_ngc_caches_resolve_offline(empty_caches, capsys):
    hub, nemo = empty_caches
    in_hub = seed_hf_cache(
        hub, "nvidia/stt_zh_citrinet_1024_gamma_0_25", "stt_zh_citrinet_1024_gamma_0_25.nemo", SHIPPED_ZH
    )
    in_ngc = seed_ngc_cache(nemo, "stt_en_quartznet15x5.nemo", SHIPPED_EN)
    assert resolve("stt_zh_citrinet_1024_gamma_0_25") == in_hub
    assert resolve("nvidia/stt_zh_citrinet_1024_gamma_0_25") == in_hub  # the Hugging Face id names the same entry
    assert resolve("stt_en_quartznet15x5") == in_ngc  # on NGC only: no Hugging Face entry
    english = restore_pretrained("stt_en_quartznet15x5")
    assert type(english).__name__ == "EncDecCTCModel" and list(english.decoder.vocabulary)[:3] == [" ", "'", "a"]
    mandarin = restore_pretrained("stt_zh_citrinet_1024_gamma_0_25")
    assert "我" in mandarin.decoder.vocabulary
    assert cli_main(["bases"]) == 0
    listing = capsys.readouterr().out
    assert str(in_hub) in listing and str(in_ngc) in listing and str(SHIPPED_EN) in listing
    assert cli_main(["bases", "path", "stt_en_quartznet15x5"]) == 0
    assert capsys.readouterr().out.strip() == str(in_ngc)


def test_unknown_name_lists_the_catalog(empty_caches, capsys):
    assert cli_main(["bases", "fetch", "stt_xx_nothing"]) == 2
    err = capsys.readouterr().err
    assert "'stt_xx_nothing' is not in the base catalog" in err and "stt_zh_citrinet_512" in err
    assert "offline" not in err


def test_offline_miss_says_where_it_looked(empty_caches, capsys):
    assert cli_main(["bases", "fetch", "stt_zh_citrinet_1024_gamma_0_25"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for place in (
        "Hugging Face cache: not in the cache",
        "NeMo NGC cache: not in NeMo's cache",
        "Hugging Face download: offline (HF_HUB_OFFLINE=1)",
        "NGC download: offline (HF_HUB_OFFLINE=1)",
    ):
        assert place in err
    with pytest.raises(BaseModelUnavailable, match=r"\(init.nemo=/path/to/model.nemo\)"):
        restore_pretrained("stt_en_conformer_ctc_small")


def test_download_errors_are_described_by_cause():
    import urllib.error

    from asr_transfer.bases import describe_download_error

    assert describe_download_error(urllib.error.HTTPError("u", 404, "Not Found", {}, None)) == "HTTP 404"
    assert describe_download_error(urllib.error.URLError(OSError("Name or service not known"))).startswith(
        "offline: no connection"
    )


def test_listing_shows_new_bases_with_source_and_size(empty_caches, capsys):
    """Every public base is listed with where it comes from (Hugging Face repository or NGC URL) and its
    download size, and every fact is quoted with the page it came from."""
    assert cli_main(["bases"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    for name, repo, size in (
        ("parakeet-ctc-0.6b", "nvidia/parakeet-ctc-0.6b", "2.44 GB"),
        ("parakeet-ctc-1.1b", "nvidia/parakeet-ctc-1.1b", "4.25 GB"),
        ("stt_en_fastconformer_hybrid_large_pc", "nvidia/stt_en_fastconformer_hybrid_large_pc", "459 MB"),
        ("parakeet-tdt_ctc-110m", "nvidia/parakeet-tdt_ctc-110m", "459 MB"),
    ):
        assert f"huggingface.co/{repo}" in rows[name] and size in rows[name], rows[name]
    assert "EncDecHybridRNNTCTCBPEModel" in rows["parakeet-tdt_ctc-110m"]
    for ngc_only in ("stt_en_quartznet15x5", "stt_en_conformer_ctc_medium", "stt_zh_citrinet_512"):
        assert lookup(ngc_only).huggingface is None and "https://api.ngc.nvidia.com/" in rows[ngc_only]
    for base in catalog().values():
        assert base.shipped or base.sources, f"{base.name}: facts without a source"
        assert base.sha256 is None or len(base.sha256) == 64


def test_ngc_download_is_checked_against_the_catalog_sha256(empty_caches):
    """A real download through urllib (a file:// URL stands in for NGC): the right checksum passes, a wrong
    one is refused with both checksums named."""
    from asr_transfer.bases import Base, download_ngc, file_sha256

    url = SHIPPED_EN.as_uri()
    good = Base(name="checked", ngc={"url": url, "version": "1"}, sha256=file_sha256(SHIPPED_EN))
    assert download_ngc(good).read_bytes() == SHIPPED_EN.read_bytes()
    bad = Base(name="checked", ngc={"url": url, "version": "2"}, sha256="0" * 64)
    with pytest.raises(BaseModelUnavailable, match=r"has sha256 [0-9a-f]{64}, not the 0{64} the catalog records"):
        download_ngc(bad)


def test_fetch_checks_a_cached_file_against_the_catalog_sha256(empty_caches, capsys):
    hub, _ = empty_caches
    seed_hf_cache(hub, "nvidia/parakeet-tdt_ctc-110m", "parakeet-tdt_ctc-110m.nemo", SHIPPED_EN)
    assert cli_main(["bases", "fetch", "parakeet-tdt_ctc-110m"]) == 2
    err = capsys.readouterr().err
    assert f"not the {lookup('parakeet-tdt_ctc-110m').sha256} the catalog records" in err and "Traceback" not in err


@pytest.mark.slow
def test_base_recipe_trains_the_arch_it_is_given_and_publishes_it_with_provenance(tmp_path):
    """recipes/en_base/run.sh --arch fastconformer, as a user retraining a shipped base runs it (tiny sizes):
    a SentencePiece model of --bpe_size pieces, from scratch, into --model_dir with its provenance."""
    import json

    from nemo.collections.asr.models import ASRModel

    command = [REPO_ROOT / "recipes" / "en_base" / "run.sh", "--arch", "fastconformer", "--bpe_size", "32"]
    command += ["--clips", "24", "--steps", "2", "--out", "base", "--model_dir", "models", "--jobs", "1"]
    done = run_recipe_process(tmp_path, *map(str, command), "--note", "a test", timeout=900)
    assert [f"Stage {n}: " in done.stdout for n in range(5)] == [True] * 5
    assert "[NeMo W" not in done.stdout + done.stderr  # a quiet log: Lhotse's loader notes stay in the run folder
    model = tmp_path / "models" / "en_tiny_fastconformer_bpe32.nemo"
    restored = ASRModel.restore_from(str(model), map_location="cpu")
    assert type(restored).__name__ == "EncDecCTCModelBPE" and restored.tokenizer.vocab_size == 32
    provenance = json.loads((tmp_path / "models" / "en_tiny_fastconformer_bpe32.provenance.json").read_text())
    assert provenance["config"]["init"]["scratch"] and provenance["config"]["trainer"]["max_steps"] == 2
    assert provenance["dev"]["utterances"] > 0 and provenance["sha256"]
    assert "--arch fastconformer --clips 24 --steps 2 --seed 7 --bpe_size 32; a test" in provenance["note"]
