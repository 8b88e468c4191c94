"""Every option README.md documents is run by a test that trains, decodes or writes with it (issue 19).

Each test runs an option the way a user does (``asr_transfer.cli.main([...])`` for command-line flags,
``finetune(load_config(...))`` for fine-tuning config keys) and checks the effect the README promises,
not only that the command exits 0.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from asr_transfer.cli import main as cli_main
from asr_transfer.training.finetune import finetune
from asr_transfer.training.freezing import NORM_TYPES, encoder_blocks
from tests.conftest import ENGLISH, REPO, read_lines
from tests.test_training import run_cfg

SHIPPED_QUARTZNET = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"
SHIPPED_FASTCONFORMER = REPO / "recipes" / "en_base" / "model" / "en_tiny_fastconformer_bpe128.nemo"
TWO_STEPS = ("trainer.max_steps=2", "trainer.val_check_interval=2")


# ----------------------------------------------------------------------------------------------------
# finetune config keys


def restore(path) -> torch.nn.Module:
    from nemo.collections.asr.models import ASRModel

    return ASRModel.restore_from(str(path), map_location="cpu")


def snapshot(model) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def norm_modules(model, block_index: int) -> dict[str, torch.nn.Module]:
    block = encoder_blocks(model)[block_index]
    return {name: module for name, module in block.named_modules() if isinstance(module, NORM_TYPES)}


class Probe(Callback):
    """What the model looks like when training starts, after each step, and when training ends."""

    def __init__(self, watch_blocks: tuple[int, ...] = ()):
        self.watch_blocks = watch_blocks
        self.start: dict[str, torch.Tensor] = {}
        self.end: dict[str, torch.Tensor] = {}
        self.after_step: list[dict] = []
        self.requires_grad_end: dict[str, bool] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = snapshot(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        norms = {
            (index, name): (module.training, [p.requires_grad for p in module.parameters()])
            for index in self.watch_blocks
            for name, module in norm_modules(pl_module, index).items()
        }
        self.after_step.append({"state": snapshot(pl_module), "norms": norms})

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = snapshot(pl_module)
        self.requires_grad_end = {name: p.requires_grad for name, p in pl_module.named_parameters()}


def block_keys(state: dict, prefix: str) -> list[str]:
    return [key for key in state if key.startswith(prefix)]


def test_keep_norm_trainable_false_freezes_the_norm_layers_of_frozen_blocks(tmp_path, german, tiny_base):
    """freeze.encoder_blocks=2 freeze.keep_norm_trainable=false: the frozen blocks' BatchNorm layers are
    frozen too (no gradient, eval mode, running statistics kept), while the blocks above learn."""
    probe = Probe(watch_blocks=(0, 1, 2))
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={tiny_base}",
        *TWO_STEPS,
        "freeze.encoder_blocks=2",
        "freeze.keep_norm_trainable=false",
    )
    finetune(cfg, callbacks=(probe,))
    base = restore(tiny_base)
    assert len(probe.after_step) == 2
    for step in probe.after_step:
        for (index, name), (training, requires_grad) in step["norms"].items():
            if index < 2:
                assert not training and not any(requires_grad), (index, name)
            else:
                assert training and all(requires_grad), (index, name)
    for index in (0, 1):
        prefix = f"encoder.encoder.{index}."
        keys = block_keys(probe.end, prefix)
        assert any("running_mean" in key for key in keys)
        for key in keys:  # every weight and every BatchNorm statistic of a frozen block is the base's
            assert torch.equal(probe.end[key], base.state_dict()[key]), key
    moved = [key for key in block_keys(probe.end, "encoder.encoder.2.") if "running_mean" in key]
    assert moved and all(not torch.equal(probe.end[key], base.state_dict()[key]) for key in moved)


def test_reinit_top_resets_the_top_block_of_the_restored_base(tmp_path, german):
    """freeze.reinit_top=1 on the shipped (trained) English base: training starts with every weight of the
    top encoder block re-initialized, every block below it as the base has it."""
    probe = Probe()
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={SHIPPED_QUARTZNET}",
        *TWO_STEPS,
        "freeze.reinit_top=1",
    )
    finetune(cfg, callbacks=(probe,))
    base_model = restore(SHIPPED_QUARTZNET)
    base = base_model.state_dict()
    top = len(encoder_blocks(base_model)) - 1
    top_weights = [key for key in block_keys(probe.start, f"encoder.encoder.{top}.") if key.endswith("weight")]
    assert top_weights and all(not torch.equal(probe.start[key], base[key]) for key in top_weights)
    for index in range(top):
        for key in block_keys(probe.start, f"encoder.encoder.{index}."):
            assert torch.equal(probe.start[key], base[key]), key


def test_keep_shared_tokens_false_starts_every_decoder_row_fresh(tmp_path, german, tiny_base):
    """vocab.keep_shared_tokens=false: the decoder rows of a-z (held by both vocabularies) are not the
    base's rows, and the run's model report says no token was kept."""
    probe = Probe()
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={tiny_base}",
        *TWO_STEPS,
        "vocab.keep_shared_tokens=false",
    )
    log_dir = finetune(cfg, callbacks=(probe,))
    assert json.loads((log_dir / "model_report.json").read_text())["shared_tokens_kept"] == 0
    base = restore(tiny_base)
    base_weight = base.decoder.decoder_layers[0].weight.detach()
    key = next(k for k in probe.start if k.startswith("decoder.") and k.endswith("weight"))
    weight = probe.start[key].squeeze(-1)
    labels = list(restore(log_dir / "checkpoints" / "run.nemo").decoder.vocabulary)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        row = weight[labels.index(letter)]
        assert not torch.equal(row, base_weight[ENGLISH.index(letter)].squeeze(-1)), letter


def test_freezing_the_fastconformer_base_keeps_its_frozen_layers(tmp_path, german):
    """The shipped FastConformer BPE base, its config and a German BPE vocabulary: with
    freeze.encoder_blocks=2 the subsampling and the two lowest layers (norms aside) end 2 steps unchanged,
    and the layers above moved."""
    probe = Probe()
    cfg = run_cfg(
        "tiny_fastconformer_bpe.yaml",
        tmp_path,
        german,
        f"init.nemo={SHIPPED_FASTCONFORMER}",
        f"vocab.dir={german['bpe']}",
        *TWO_STEPS,
        "freeze.encoder_blocks=2",
    )
    finetune(cfg, callbacks=(probe,))
    base_model = restore(SHIPPED_FASTCONFORMER)
    base = base_model.state_dict()
    norms = {f"encoder.layers.{index}.{name}." for index in (0, 1) for name in norm_modules(base_model, index)}
    frozen = [
        key
        for key in probe.end
        if key.startswith(("encoder.pre_encode.", "encoder.layers.0.", "encoder.layers.1."))
        and not any(key.startswith(norm) for norm in norms)
    ]
    assert len(frozen) > 20
    for key in frozen:
        assert torch.equal(probe.end[key], base[key]), key
    trained = [key for key in block_keys(probe.end, "encoder.layers.2.") if key.endswith("weight")]
    assert trained and any(not torch.equal(probe.end[key], base[key]) for key in trained)


def test_until_step_unfreezes_the_frozen_blocks(tmp_path, german, tiny_base):
    """freeze.encoder_blocks=2 freeze.until_step=1: the lowest blocks stay as the base has them for the
    first step, then every parameter trains (requires_grad) and they move in the second step."""
    probe = Probe()
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={tiny_base}",
        *TWO_STEPS,
        "freeze.encoder_blocks=2",
        "freeze.until_step=1",
    )
    finetune(cfg, callbacks=(probe,))
    base = restore(tiny_base).state_dict()
    conv = [key for key in block_keys(base, "encoder.encoder.0.") if key.endswith("conv.weight")]
    assert conv
    first, second = (step["state"] for step in probe.after_step)
    assert all(torch.equal(first[key], base[key]) for key in conv), "frozen during step 1"
    assert all(probe.requires_grad_end.values()), "everything trains after until_step"
    assert all(not torch.equal(second[key], base[key]) for key in conv), "unfrozen blocks must learn in step 2"


def test_monitor_val_loss_names_and_picks_checkpoints_by_val_loss(tmp_path, german, tiny_base):
    """exp_manager.checkpoint_callback_params.monitor=val_loss in a real run: checkpoint names carry
    val_loss, and the one kept as best has the lowest dev loss of the run."""
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={tiny_base}",
        "trainer.max_steps=2",
        "trainer.val_check_interval=1",
        "exp_manager.checkpoint_callback_params.monitor=val_loss",
    )
    log_dir = finetune(cfg)
    checkpoints = sorted(path.name for path in (log_dir / "checkpoints").glob("*.ckpt"))
    best = [name for name in checkpoints if not name.endswith("-last.ckpt")]
    assert best and all("val_loss=" in name and "val_wer" not in name for name in checkpoints), checkpoints
    with open(log_dir / "curves" / "metrics.csv", encoding="utf-8") as handle:
        losses = [float(row["val_loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 2
    assert len(best) == 1, "save_top_k=1 keeps one best checkpoint"
    kept = float(best[0].split("val_loss=")[1].split("-")[0])
    assert kept == pytest.approx(min(losses), abs=1e-3)
    # the run's best model (what export copies) holds the weights of that checkpoint
    best_state = torch.load(log_dir / "checkpoints" / best[0], map_location="cpu", weights_only=False)["state_dict"]
    exported = restore(log_dir / "checkpoints" / "run.nemo").state_dict()
    for key in ("decoder.decoder_layers.0.weight", "encoder.encoder.0.mconv.0.conv.weight"):
        assert torch.equal(exported[key], best_state[key]), key


# ----------------------------------------------------------------------------------------------------
# prepare-cv and prepare-folder flags


def prepare_cv(source, out: Path, *flags: str, lang: str = "de") -> dict:
    argv = ["prepare-cv", str(source), str(out), "--lang", lang, "--jobs", "2", "--no-progress", *flags]
    assert cli_main(argv) == 0
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def rejects_by_reason(out: Path) -> dict[str, set[str]]:
    reasons: dict[str, set[str]] = {}
    with open(out / "rejects.tsv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            reasons.setdefault(row["reason"], set()).add(Path(row["path"]).stem)
    return reasons


def kept_entries(out: Path) -> dict[str, dict]:
    return {
        Path(entry["audio_filepath"]).stem: entry
        for split in ("train", "dev", "test")
        for entry in read_lines(out / f"{split}.json")
    }


def test_prepare_cv_train_from_validated_adds_clean_validated_clips(tmp_path, faulty_de_corpus, prepared_de):
    default_out, default = prepared_de
    summary = prepare_cv(faulty_de_corpus, tmp_path / "out", "--train-from-validated")
    counts = summary["train_from_validated"]
    assert counts["added"] > 0 and counts["validated_rows"] > counts["added"]
    assert summary["splits"]["train"]["rows_in"] == default["splits"]["train"]["rows_in"] + counts["added"]
    train = read_lines(tmp_path / "out" / "train.json")
    assert len(train) == summary["splits"]["train"]["kept"] > default["splits"]["train"]["kept"]
    held_out = [entry for split in ("dev", "test") for entry in read_lines(tmp_path / "out" / f"{split}.json")]
    assert not {entry["speaker"] for entry in train} & {entry["speaker"] for entry in held_out}
    assert not {entry["text"] for entry in train} & {entry["text"] for entry in held_out}


def test_prepare_cv_audio_format_flac_writes_16k_mono_flac(tmp_path, faulty_de_corpus, prepared_de):
    import soundfile

    _, default = prepared_de
    summary = prepare_cv(faulty_de_corpus, tmp_path / "out", "--audio-format", "flac")
    assert summary["kept"] == default["kept"]
    entries = kept_entries(tmp_path / "out")
    assert entries and not list((tmp_path / "out" / "clips").glob("*.wav"))
    for entry in entries.values():
        info = soundfile.info(entry["audio_filepath"])
        assert entry["audio_filepath"].endswith(".flac")
        assert (info.format, info.samplerate, info.channels) == ("FLAC", 16000, 1)
        assert entry["duration"] == pytest.approx(info.frames / 16000, abs=1e-3)


def widest_gap(values: list[float], first: int, last: int) -> float:
    """The middle of the widest gap between neighbours values[i], values[i + 1] (first <= i < last) of
    the sorted values: a bound there sorts the clips the same way whatever the rounding of durations."""
    values = sorted(values)
    index = max(range(first, last), key=lambda i: values[i + 1] - values[i])
    return (values[index] + values[index + 1]) / 2


def test_prepare_cv_duration_bounds_reject_short_and_long_clips(tmp_path, faulty_de_corpus, prepared_de):
    default_out, _ = prepared_de
    default = kept_entries(default_out)
    durations = [entry["duration"] for entry in default.values()]
    shortest, longest = widest_gap(durations, 1, 6), widest_gap(durations, len(durations) - 7, len(durations) - 2)
    out = tmp_path / "out"
    prepare_cv(faulty_de_corpus, out, "--min-duration", f"{shortest:.4f}", "--max-duration", f"{longest:.4f}")
    reasons = rejects_by_reason(out)
    short = {stem for stem, entry in default.items() if entry["duration"] < shortest}
    long = {stem for stem, entry in default.items() if entry["duration"] > longest}
    assert 2 <= len(short) <= 6 and 2 <= len(long) <= 6
    assert short <= reasons["too_short"] and long <= reasons["too_long"]
    assert set(kept_entries(out)) == set(default) - short - long


def test_prepare_cv_max_chars_per_second_rejects_fast_speech(tmp_path, faulty_de_corpus, prepared_de):
    default_out, _ = prepared_de
    default = kept_entries(default_out)
    rates = [len(entry["text"]) / entry["duration"] for entry in default.values()]
    limit = widest_gap(rates, len(rates) // 3, 2 * len(rates) // 3)  # a third to two thirds speak faster
    out = tmp_path / "out"
    prepare_cv(faulty_de_corpus, out, "--max-chars-per-second", f"{limit:.4f}")
    fast = {stem for stem, entry in default.items() if len(entry["text"]) / entry["duration"] > limit}
    assert len(default) // 4 <= len(fast) <= 3 * len(default) // 4
    assert rejects_by_reason(out)["too_many_chars_per_second"] == fast
    assert set(kept_entries(out)) == set(default) - fast


def test_prepare_cv_text_option_fold_yo(tmp_path):
    """--text-option fold_yo (ru's optional map; no other language file has one) writes ё as е."""
    from asr_transfer.languages import load_language
    from asr_transfer.synth.synth_cv import synth_cv

    locale = synth_cv("ru", 12, str(tmp_path / "cv"), seed=1, jobs=2, progress=False)
    sentences = {}
    for split in ("train", "dev", "test"):
        with open(locale / f"{split}.tsv", encoding="utf-8") as handle:
            sentences |= {Path(row["path"]).stem: row["sentence"] for row in csv.DictReader(handle, delimiter="\t")}
    summary = prepare_cv(tmp_path / "cv", tmp_path / "out", "--text-option", "fold_yo", lang="ru")
    assert summary["text_options"] == ["fold_yo"]
    entries = kept_entries(tmp_path / "out")
    plain = load_language("ru")
    with_yo = [stem for stem in entries if "ё" in plain.normalize(sentences[stem]).text]
    assert len(with_yo) >= 3, "the corpus must say ё for this to test anything"
    for stem, entry in entries.items():
        assert entry["text"] == plain.normalize(sentences[stem]).text.replace("ё", "е"), stem


def test_prepare_folder_path_and_text_columns(tmp_path, prepared_de):
    """--path-column/--text-column pick the named columns, even where a default-named column exists."""
    default_out, _ = prepared_de
    rows = read_lines(default_out / "dev.json")[:3]
    with open(tmp_path / "table.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "text", "clip_location", "what_was_said"])  # decoys first
        for row in rows:
            writer.writerow(["nowhere.wav", "falsch", row["audio_filepath"], row["text"].upper()])
    columns = ["--path-column", "clip_location", "--text-column", "what_was_said"]
    argv = ["prepare-folder", str(tmp_path / "table.csv"), str(tmp_path / "out"), "--lang", "de", *columns,
            "--jobs", "1", "--no-progress"]  # fmt: skip
    assert cli_main(argv) == 0
    entries = read_lines(tmp_path / "out" / "train.json")
    assert [entry["text"] for entry in entries] == [row["text"] for row in rows]
    assert [entry["duration"] for entry in entries] == pytest.approx([row["duration"] for row in rows], abs=1e-3)


# ----------------------------------------------------------------------------------------------------
# manifest, tokenizer, synthesis, inspection, shards, bases


def test_manifest_subset_hours_seed_out(tmp_path, german):
    total = sum(entry["duration"] for entry in read_lines(Path(german["train"]))) / 3600
    small, large = tmp_path / "small.json", tmp_path / "large.json"
    for hours, out in ((total / 4, small), (total / 2, large)):
        assert cli_main(["manifest", "subset", german["train"], "--hours", f"{hours:.6f}", "--seed", "7",
                         "--out", str(out)]) == 0  # fmt: skip
    small_rows, large_rows = read_lines(small), read_lines(large)
    longest = max(entry["duration"] for entry in read_lines(Path(german["train"])))
    for rows, hours in ((small_rows, total / 4), (large_rows, total / 2)):
        drawn = sum(entry["duration"] for entry in rows)
        assert hours * 3600 <= drawn < hours * 3600 + longest
    assert {e["audio_filepath"] for e in small_rows} < {e["audio_filepath"] for e in large_rows}, "nested"
    other = tmp_path / "other.json"
    cli_main(["manifest", "subset", german["train"], "--hours", f"{total / 4:.6f}", "--seed", "8", "--out", str(other)])
    assert read_lines(other) != small_rows, "the seed picks the draw"


def test_train_tokenizer_unigram_loads_in_nemo(tmp_path, german):
    from nemo.collections.asr.models import EncDecCTCModelBPE
    from sentencepiece import sentencepiece_model_pb2

    argv = ["train-tokenizer", str(tmp_path / "tok"), "--manifest", german["train"], "--lang", "de",
            "--kind", "unigram", "--vocab-size", "40"]  # fmt: skip
    assert cli_main(argv) == 0
    folder = tmp_path / "tok" / "de" / "spe_unigram_v40"
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((folder / "tokenizer.model").read_bytes())
    assert proto.trainer_spec.model_type == sentencepiece_model_pb2.TrainerSpec.UNIGRAM
    model = EncDecCTCModelBPE.restore_from(str(SHIPPED_FASTCONFORMER), map_location="cpu")
    model.change_vocabulary(str(folder), "bpe")
    assert model.tokenizer.vocab_size == 40
    assert model.decoder.num_classes_with_blank == 41


def test_synth_cv_old_release_layout_is_read_by_prepare_cv(tmp_path):
    from asr_transfer.manifests.common_voice import HEADERS

    assert cli_main(["synth-cv", str(tmp_path / "cv"), "--lang", "de", "--clips", "12", "--cv-version", "5.1",
                     "--jobs", "2", "--no-progress"]) == 0  # fmt: skip
    locale = tmp_path / "cv" / "cv-corpus-5.1-2024-03-15" / "de"
    assert (locale / "train.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t") == HEADERS[5].split()
    summary = prepare_cv(tmp_path / "cv", tmp_path / "out")
    assert summary["rows_in"] == 12 and summary["kept"] >= 10
    assert not {"malformed_row", "missing_clip"} & set(summary["splits"]["train"]["rejected_by_reason"])
    entry = read_lines(tmp_path / "out" / "train.json")[0]
    assert entry["locale"] == "de" and "sentence_id" not in entry


def test_inspect_json_holds_a_row_per_layer(tmp_path, tiny_base):
    tuned = restore(tiny_base)
    with torch.no_grad():
        tuned.encoder.encoder[1].mconv[0].conv.weight.mul_(2.0)  # relative change exactly 1
    tuned.save_to(str(tmp_path / "tuned.nemo"))
    out = tmp_path / "inspect.json"
    assert cli_main(["inspect", "--base", tiny_base, "--tuned", str(tmp_path / "tuned.nemo"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    layers = {row["layer"]: row for row in report["layers"]}
    assert len(layers) > 10 and not any(name.startswith("preprocessor") for name in layers)
    assert layers["encoder.encoder.1.mconv.0.conv"]["relative_change"] == pytest.approx(1.0, rel=1e-5)
    assert sum(row["relative_change"] > 1e-6 for row in report["layers"]) == 1
    assert report["blocks"]


def test_shard_writes_shar_folder_and_index(tmp_path, german):
    from lhotse import CutSet

    out = tmp_path / "shards"
    argv = ["shard", german["train"], str(out), "--shards", "2", "--world-size", "2", "--jobs", "1",
            "--no-progress", "--seed", "3"]  # fmt: skip
    assert cli_main(argv) == 0
    names = sorted(path.name for path in (out / "shar").iterdir())
    assert names == ["cuts.000000.jsonl.gz", "cuts.000001.jsonl.gz", "recording.000000.tar", "recording.000001.tar"]
    rows = read_lines(Path(german["train"]))
    index = json.loads((out / "shar_index.json").read_text())
    assert sum(index["clips_per_shard"]) == len(rows)
    cuts = CutSet.from_shar(in_dir=out / "shar")
    assert sorted(cut.supervisions[0].text for cut in cuts) == sorted(row["text"] for row in rows)


def test_asr_transfer_offline_forbids_downloads(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hf_hub"))
    monkeypatch.setenv("NEMO_CACHE_DIR", str(tmp_path / "nemo_cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("ASR_TRANSFER_OFFLINE", "1")
    assert cli_main(["bases", "fetch", "stt_zh_citrinet_1024_gamma_0_25"]) == 2
    err = capsys.readouterr().err
    assert "Hugging Face download: offline (ASR_TRANSFER_OFFLINE=1)" in err
    assert "NGC download: offline (ASR_TRANSFER_OFFLINE=1)" in err
    assert not list(tmp_path.rglob("*.nemo")), "nothing was downloaded"


# ----------------------------------------------------------------------------------------------------
# decoding


def test_transcribe_with_beam_search_prints_transcripts(english_model_and_data, monkeypatch, capsys):
    from asr_transfer.inference import transcribe

    model_path, _, dev = english_model_and_data
    files = [entry["audio_filepath"] for entry in read_lines(Path(dev))[:3]]
    used = {}
    original = transcribe.set_decoding

    def spy(model, decoding, **kwargs):
        original(model, decoding, **kwargs)
        used.update(strategy=model.cfg.decoding.strategy, beam_size=model.cfg.decoding.beam.beam_size)

    monkeypatch.setattr(transcribe, "set_decoding", spy)
    assert cli_main(["transcribe", "--model", model_path, *files, "--decoding", "beam", "--beam-size", "4"]) == 0
    assert used["strategy"].startswith("beam") and used["beam_size"] == 4
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    for line in lines:
        text = line.split("\t")[1]
        assert text.strip() and set(text) <= set(ENGLISH), line


def test_evaluate_with_lm_and_beam_beta(tmp_path, english_model_and_data):
    """--lm with an explicit --beam-beta: the summary names the beta, and a length bonus lengthens the
    hypotheses against beta 0."""
    model_path, train, dev = english_model_and_data
    lm = tmp_path / "lm.arpa"
    assert cli_main(["train-lm", "--model", model_path, "--manifest", train, "--order", "3", str(lm)]) == 0
    lengths = {}
    for beta in ("0", "4"):
        out = tmp_path / f"beta{beta}"
        argv = ["evaluate", "--model", model_path, "--manifest", dev, "--lm", str(lm), "--lm-alpha", "0.5",
                "--beam-beta", beta, "--beam-size", "4", "--out", str(out)]  # fmt: skip
        assert cli_main(argv) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["decoding"] == f"beam4+lm(alpha=0.5, beta={beta})"
        lengths[beta] = sum(len(row["hypothesis"]) for row in read_lines(out / "hypotheses.jsonl"))
    assert lengths["4"] > lengths["0"]


# ----------------------------------------------------------------------------------------------------
# report languages


def fake_study(folder: Path, lang: str, seeds=(0,), protocol: str = "") -> None:
    """A finished two-arm study as `asr-transfer study` leaves it (see tests/test_study.py). ``protocol``:
    extra study_config lines (``steps: 300\npatience: 2``)."""
    folder.mkdir(parents=True)
    (folder.parent / f"{folder.name}_base.provenance.json").write_text(json.dumps({"parameters": 400_000}))
    (folder / "study_config.yaml").write_text(
        f"lang: {lang}\ndescription: fake\nbase: {{nemo: {folder.parent / folder.name}_base.nemo}}\n{protocol}"
    )
    runs = [
        {"budget": 1.0, "arm": arm, "seed": seed, "test_wer": wer + seed / 100, "test_cer": wer / 2, "steps": 300}
        for seed in seeds
        for arm, wer in (("scratch", 0.9), ("transfer", 0.5))
    ]
    (folder / "results.json").write_text(json.dumps({"name": folder.name, "command": "study", "runs": runs}))
    lines = ["budget,arm,seed,step,seconds,dev_wer,dev_cer"]
    scratch = [(100, 0.9), (200, 0.8), (300, 0.85), (400, 0.8)]  # best at 200, none since: settled for patience 2
    for seed in seeds:
        for arm, curve in (("scratch", scratch), ("transfer", [(50, 0.9), (100, 0.8 - seed / 10)])):
            lines += [f"1.0,{arm},{seed},{step},{step},{value},{value / 2}" for step, value in curve]
    (folder / "curves.csv").write_text("\n".join(lines) + "\n")


def test_report_languages_writes_the_table(tmp_path):
    fake_study(tmp_path / "de_study", "de")
    fake_study(tmp_path / "es_study", "es")
    out = tmp_path / "report"
    argv = ["report", "languages", str(tmp_path / "de_study"), str(tmp_path / "es_study"), "--out", str(out)]
    assert cli_main(argv) == 0
    results = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert "| de_study | de_study_base | de | WER |" in results and "| es_study | es_study_base | es | WER |" in results
    assert (out / "dev_curves.png").stat().st_size > 10_000


def test_report_languages_gives_each_seeds_speed_up_under_the_protocol(tmp_path):
    """Seeds: test values as mean ± sd, one speed-up per seed (scratch's step to its best over the same
    seed's transfer step to it), their mean when every seed measured one; the protocol named per study."""
    fake_study(tmp_path / "de_study", "de", seeds=(0, 1), protocol="steps: 300\npatience: 2\n")
    out = tmp_path / "report"
    assert cli_main(["report", "languages", str(tmp_path / "de_study"), "--out", str(out)]) == 0
    results = (out / "RESULTS.md").read_text(encoding="utf-8")
    # Scratch's best, 0.8, first at step 200; each seed's transfer first at or below it at step 100.
    assert "| de_study | de_study_base | de | WER | 300, patience 2 | 2 | 0.905 ± 0.007 |" in results, results
    assert "| 100; 100 | 2.0x ± 0.0 (measured, 2 seeds) |" in results, results
    assert "both arms on one 300-step schedule, each stopped after 2 validations without a new best" in results
    rows = list(csv.DictReader((out / "results.csv").open(encoding="utf-8")))
    assert [(row["arm"], row["seed"], row["speed_up"]) for row in rows] == [
        ("scratch", "0", ""), ("transfer", "0", "2.0"), ("scratch", "1", ""), ("transfer", "1", "2.0"),
    ]  # fmt: skip
