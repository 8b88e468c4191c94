"""Lhotse Shar shards: `asr-transfer shard`, `prepare-cv --shar`, and DDP training where ranks read disjoint shards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from asr_transfer.manifests.shar import ShardOptions, index_path, rank_fields, results_path, shard_fields, shard_file
from asr_transfer.manifests.shard_manifest import shard_manifest
from tests.conftest import CONF, REPO, read_lines


def cut_ids_by_shard(folder: Path) -> list[list[str]]:
    from lhotse import CutSet

    fields = shard_fields(folder)
    return [[cut.id for cut in CutSet.from_jsonl_lazy(path)] for path in fields["cuts"]]


@pytest.fixture(scope="module")
def manifest_with_faults(german, tmp_path_factory) -> tuple[Path, int]:
    """The German training manifest plus a broken line, a duplicate and a missing clip; (path, good rows)."""
    rows = read_lines(Path(german["train"]))
    folder = tmp_path_factory.mktemp("shard_input")
    missing = {**rows[0], "audio_filepath": str(folder / "gone.wav")}
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    lines += ["{not json", json.dumps(rows[1], ensure_ascii=False), json.dumps(missing)]
    path = folder / "train.json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, len(rows)


def test_shard_accounts_for_every_row_and_lhotse_reads_it(manifest_with_faults, german, tmp_path):
    from lhotse import CutSet

    manifest, good = manifest_with_faults
    out = tmp_path / "shards"
    summary = shard_manifest(str(manifest), str(out), ShardOptions(shards=4, world_size=2, buckets=5), jobs=2)
    assert summary["rows_in"] == good + 3 == summary["kept"] + summary["rejected"]
    assert summary["rejected_by_reason"] == {"duplicate_path": 1, "malformed_row": 1, "missing_clip": 1}
    rejects = (out / "rejects.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rejects) == 1 + 3 and rejects[-1].split("\t")[1].endswith("gone.wav")

    index = json.loads(index_path(out).read_text())
    assert sum(index["clips_per_shard"]) == good and max(index["clips_per_shard"]) - min(index["clips_per_shard"]) <= 1
    bins = index["bucket_duration_bins"]
    assert 1 <= len(bins) <= 4 and bins == sorted(bins)

    cuts = CutSet.from_shar(in_dir=out / "shar")  # stock lhotse, the folder as NeMo's shar_path reads it
    seen = {cut.id: cut for cut in cuts}
    assert len(seen) == good
    source = read_lines(Path(german["train"]))[5]
    cut = next(cut for cut in seen.values() if cut.supervisions[0].text == source["text"])
    reference, rate = soundfile.read(source["audio_filepath"], dtype="float32")
    audio = cut.load_audio()[0]
    assert rate == cut.sampling_rate == 16000 and audio.shape == reference.shape
    assert np.abs(audio - reference).max() < 1e-4  # FLAC of the 16-bit samples: lossless
    assert cut.supervisions[0].custom["speaker"] == source["speaker"]


def test_shard_order_follows_the_seed_and_reruns_skip_finished_shards(manifest_with_faults, tmp_path):
    manifest, _ = manifest_with_faults
    first = tmp_path / "a"
    shard_manifest(
        str(manifest), str(first), ShardOptions(shards=2, seed=1, audio_format="wav"), jobs=1, progress=False
    )
    again = tmp_path / "b"
    shard_manifest(
        str(manifest), str(again), ShardOptions(shards=2, seed=1, audio_format="wav"), jobs=2, progress=False
    )
    other = tmp_path / "c"
    shard_manifest(
        str(manifest), str(other), ShardOptions(shards=2, seed=2, audio_format="wav"), jobs=2, progress=False
    )
    assert cut_ids_by_shard(first) == cut_ids_by_shard(again) != cut_ids_by_shard(other)

    stamps = {index: shard_file(first, "recording", index).stat().st_mtime_ns for index in (0, 1)}
    results_path(first, 1).unlink()  # as if killed after shard 0 was finished
    shard_manifest(
        str(manifest), str(first), ShardOptions(shards=2, seed=1, audio_format="wav"), jobs=2, progress=False
    )
    assert shard_file(first, "recording", 0).stat().st_mtime_ns == stamps[0]
    assert shard_file(first, "recording", 1).stat().st_mtime_ns != stamps[1]
    assert cut_ids_by_shard(first) == cut_ids_by_shard(again)


def test_rank_split_is_disjoint_and_needs_a_divisible_count(tmp_path, manifest_with_faults):
    manifest, _ = manifest_with_faults
    out = tmp_path / "s"
    shard_manifest(str(manifest), str(out), ShardOptions(shards=4, audio_format="wav"), jobs=2, progress=False)
    fields = shard_fields(out)
    ranks = [rank_fields(fields, rank, 2) for rank in (0, 1)]
    assert set(ranks[0]["cuts"]).isdisjoint(ranks[1]["cuts"]) and len(ranks[0]["cuts"]) == 2
    assert [Path(path).name for path in ranks[1]["recording"]] == ["recording.000001.tar", "recording.000003.tar"]
    result = subprocess.run(
        [sys.executable, "-m", "asr_transfer.cli", "shard", str(manifest), str(tmp_path / "x"), "--shards", "3"]
        + ["--world-size", "2"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "not a multiple of --world-size 2" in result.stderr


def test_prepare_cv_shar_matches_the_clip_build(faulty_de_corpus, prepared_de, tmp_path, capsys):
    """Same rows kept and rejected, for the same reasons, as the per-clip build; train has no clip files.
    --world-size: a shard count it does not divide is refused before anything is read or written, and so are
    shard flags without --shar (they were silently ignored)."""
    from asr_transfer.cli import main as cli_main

    clips_out, clips_summary = prepared_de
    out = tmp_path / "sharded"
    argv = ["prepare-cv", str(faulty_de_corpus.parent.parent), str(out), "--lang", "de", "--audio-format", "flac"]
    argv += ["--jobs", "2", "--no-progress", "--world-size", "2"]
    assert cli_main([*argv, "--seed", "5", "--buckets", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --world-size 2, --seed 5, --buckets 8: these shape the shards --shar writes; add --shar N or drop them"
    )
    assert not out.exists()
    assert cli_main([*argv, "--shar", "3"]) == 2
    err = capsys.readouterr().err.strip()
    # named by prepare-cv's own flag (it was --shards, which prepare-cv does not take)
    assert err.count("\n") == 0 and err.startswith("error: --shar 3 is not a multiple of --world-size 2"), err
    assert err.endswith("e.g. --shar 4") and not out.exists()
    assert cli_main([*argv, "--shar", "2"]) == 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for split in ("train", "dev", "test"):
        ours, theirs = summary["splits"][split], clips_summary["splits"][split]
        assert (ours["rows_in"], ours["kept"], ours["rejected_by_reason"]) == (
            theirs["rows_in"],
            theirs["kept"],
            theirs["rejected_by_reason"],
        )
    train = read_lines(out / "train.json")
    assert {row["shard_id"] for row in train} == {0, 1} and all(
        row["audio_filepath"].endswith(".flac") for row in train
    )
    expected = sorted(Path(row["audio_filepath"]).stem for row in read_lines(clips_out / "train.json"))
    assert sorted(cut for shard in cut_ids_by_shard(out / "train_shar") for cut in shard) == expected
    clip_files = {path.stem for path in (out / "clips").iterdir()}
    assert clip_files.isdisjoint(expected) and summary["train_shar"]["clips"] == len(expected)


@pytest.mark.slow
def test_ddp_two_ranks_train_on_disjoint_shards(tmp_path, german, tiny_base, manifest_with_faults):
    from lhotse import CutSet

    manifest, _ = manifest_with_faults
    shards = tmp_path / "shards"
    shard_manifest(str(manifest), str(shards), ShardOptions(shards=4, world_size=2), jobs=2, progress=False)
    probe = tmp_path / "probe"
    probe.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tests" / "ddp_shar_probe.py"),
            str(probe),
            str(CONF / "tiny_quartznet_char.yaml"),
            f"init.nemo={tiny_base}",
            f"vocab.dir={german['char']}",
            f"data.shar_path={shards}",
            f"data.dev_manifest={german['dev']}",
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_steps=6",
            "trainer.val_check_interval=3",
            "data.batch_size=4",
            "trainer.enable_progress_bar=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "gloo" in (result.stdout + result.stderr).lower()
    assert list((tmp_path / "exp").rglob("*.nemo"))
    fields = shard_fields(shards)
    lengths = []
    for rank in (0, 1):
        rank_cuts = [cut for path in rank_fields(fields, rank, 2)["cuts"] for cut in CutSet.from_jsonl_lazy(path)]
        lengths.append({cut.num_samples for cut in rank_cuts})
    only = [lengths[0] - lengths[1], lengths[1] - lengths[0]]
    for rank in (0, 1):
        seen = [int(line) for line in (probe / f"rank{rank}.txt").read_text().split()]
        assert len(seen) == 6 * 4  # every step, a full batch from this rank's endless stream
        assert set(seen) <= lengths[rank], f"rank {rank} trained on clips of the other rank's shards"
        assert set(seen) & only[rank], "the lengths cannot tell the ranks apart; the check would prove nothing"


def test_a_shard_whose_rows_are_all_rejected_is_written_empty(german, tmp_path):
    from lhotse import CutSet

    rows = read_lines(Path(german["train"]))[:3] + [{"audio_filepath": "/nowhere.wav", "duration": 1.0, "text": "x"}]
    manifest = tmp_path / "m.json"
    manifest.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    summary = shard_manifest(str(manifest), str(tmp_path / "out"), ShardOptions(shards=4), jobs=1, progress=False)
    index = json.loads(index_path(tmp_path / "out").read_text())
    assert summary["rejected_by_reason"] == {"missing_clip": 1} and sorted(index["clips_per_shard"]) == [0, 1, 1, 1]
    assert len(shard_fields(tmp_path / "out")["recording"]) == 4
    assert len(list(CutSet.from_shar(in_dir=tmp_path / "out" / "shar"))) == 3


def test_finetune_refuses_shards_that_devices_times_nodes_do_not_divide(german, tiny_base, tmp_path, capsys):
    """2 shards: 2 devices alone would divide them, 2 devices x 2 nodes (4 ranks) do not; refused before the
    base loads, in one error line, with no run folder."""
    from asr_transfer.cli import main as cli_main

    rows = read_lines(Path(german["train"]))[:2]
    manifest = tmp_path / "m.json"
    manifest.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    shards = tmp_path / "shards"
    shard_manifest(str(manifest), str(shards), ShardOptions(shards=2, audio_format="wav"), jobs=1, progress=False)
    status = cli_main(
        ["finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"), f"init.nemo={tiny_base}",
         f"vocab.dir={german['char']}", f"data.shar_path={shards}", f"data.dev_manifest={german['dev']}",
         f"exp_manager.exp_dir={tmp_path / 'exp'}", "trainer.accelerator=cpu", "trainer.devices=2",
         "trainer.num_nodes=2", "trainer.max_steps=1"]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.count("\n") == 0 and err.startswith("error: "), err
    assert "2 shards cannot be split evenly over 4 ranks (devices x nodes)" in err and "a multiple of 4" in err
    assert not (tmp_path / "exp").exists()


def test_dataset_config_reads_this_ranks_shards_with_the_precomputed_bins(tmp_path, manifest_with_faults, tiny_base):
    from nemo.collections.asr.models import ASRModel
    from omegaconf import OmegaConf

    from asr_transfer.training.config import load_config
    from asr_transfer.training.data import dataset_config

    manifest, _ = manifest_with_faults
    out = tmp_path / "s"
    shard_manifest(str(manifest), str(out), ShardOptions(shards=4, buckets=3), jobs=1, progress=False)
    cfg = load_config(str(CONF / "tiny_quartznet_char.yaml"), ["vocab.dir=unused", "data.train_manifest=unused"])
    data = OmegaConf.merge(cfg.data, {"shar_path": str(out), "bucketing": True, "speed_perturb": True})
    model = ASRModel.restore_from(tiny_base, map_location="cpu")
    train = dataset_config(model, None, data, train=True, rank=1, world_size=2)
    assert train.use_lhotse and train.manifest_filepath is None
    assert [Path(path).name for path in train.shar_path.cuts] == ["cuts.000001.jsonl.gz", "cuts.000003.jsonl.gz"]
    bins = json.loads(index_path(out).read_text())["bucket_duration_bins"]
    assert list(train.bucket_duration_bins) == bins and train.num_buckets == len(bins) + 1 == 3
    assert train.perturb_speed and "augmentor" not in train  # NeMo's Lhotse path would ignore an augmentor


def test_one_device_trains_from_shards_and_the_export_names_no_shard(tmp_path, german, tiny_base, manifest_with_faults):
    """Regression: a model trained from shards exported a config holding this machine's shard files."""
    import tarfile

    from asr_transfer.cli import main as cli
    from asr_transfer.training.config import load_config
    from asr_transfer.training.finetune import finetune

    manifest, _ = manifest_with_faults
    shards = tmp_path / "shards"
    shard_manifest(str(manifest), str(shards), ShardOptions(shards=2), jobs=1, progress=False)
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"),
        [
            f"init.nemo={tiny_base}",
            f"vocab.dir={german['char']}",
            f"data.shar_path={shards}",
            f"data.dev_manifest={german['dev']}",
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "data.batch_size=4",
            "data.bucketing=true",
            "data.batch_duration=20",
            "trainer.enable_progress_bar=false",
        ],
    )
    run = finetune(cfg)
    out = tmp_path / "de.nemo"
    assert cli(["export", "--run", str(run), "--out", str(out)]) == 0
    with tarfile.open(out) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("model_config.yaml"))
        config = archive.extractfile(member).read().decode("utf-8")
    assert str(tmp_path) not in config and "cuts." not in config and "recording." not in config


def test_shards_default_to_one_audio_format_wherever_they_are_written():
    """`shard` and `prepare-cv --shar` write shards in the one default format; clip files keep theirs, and
    one --audio-format given names the format of both."""
    from asr_transfer.manifests import prepare_cv
    from asr_transfer.manifests import shard_manifest as shard_command
    from asr_transfer.manifests.audio import DEFAULT_CLIP_FORMAT
    from asr_transfer.manifests.options import build_options
    from asr_transfer.manifests.shar import DEFAULT_SHARD_FORMAT, shard_options

    assert (DEFAULT_SHARD_FORMAT, DEFAULT_CLIP_FORMAT) == ("flac", "wav")
    args = shard_command.build_parser().parse_args(["m.json", "out", "--shards", "2"])
    assert shard_options(args, 2).audio_format == DEFAULT_SHARD_FORMAT
    args = prepare_cv.build_parser().parse_args(["cv", "out", "--lang", "de", "--shar", "2"])
    assert (shard_options(args, 2).audio_format, build_options(args).audio_format) == ("flac", "wav")
    args = prepare_cv.build_parser().parse_args(["cv", "out", "--lang", "de", "--shar", "2", "--audio-format", "wav"])
    assert (shard_options(args, 2).audio_format, build_options(args).audio_format) == ("wav", "wav")
