"""Faults users of NeMo-based fine-tuning tools have reported elsewhere, each turned into an input here
(issue 19): a documented option that crashed, a vocabulary that trained silently wrong, bases NeMo cannot
build, and exports that named this machine's training files."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest
import yaml

from asr_transfer.cli import main as cli
from asr_transfer.errors import InputError
from asr_transfer.training.config import ConfigError, load_config
from asr_transfer.training.finetune import check_vocabulary, finetune
from tests.conftest import CONF, REPO

BPE_BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_fastconformer_bpe128.nemo"
CHAR_BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"


def run_overrides(tmp_path, german, vocab: str, *more: str) -> list[str]:
    return [
        f"vocab.dir={vocab}",
        f"data.train_manifest={german['train']}",
        f"data.dev_manifest={german['dev']}",
        f"exp_manager.exp_dir={tmp_path / 'exp'}",
        "trainer.enable_progress_bar=false",
        "data.batch_size=4",
        "trainer.max_steps=2",
        "trainer.val_check_interval=2",
        *more,
    ]


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


# A documented option that crashed -------------------------------------------------------------------


def test_speed_perturbation_on_a_manifest_trains_and_changes_the_audio(tmp_path, german, tiny_base):
    """Regression: the augmentor asked NeMo 3.0 for resample type soxr_hq, which it refuses (a traceback
    before the first step); its kaiser_* types would need resampy, whose absence NeMo only logs, skipping
    every perturbation. The option must train and must really change the clips' lengths."""
    from nemo.collections.asr.models import ASRModel

    from asr_transfer.training.data import dataset_config

    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"),
        run_overrides(tmp_path, german, german["char"], f"init.nemo={tiny_base}", "data.speed_perturb=true"),
    )
    run = finetune(cfg)
    assert (run / "checkpoints" / "run.nemo").is_file()

    model = ASRModel.restore_from(tiny_base, map_location="cpu")
    model.setup_training_data(dataset_config(model, german["train"], cfg.data, train=True))
    dataset = model._train_dl.dataset
    lengths = {int(dataset[0][1]) for _ in range(30)}
    assert len(lengths) >= 3  # 0.9x, 1.0x, 1.1x and the rates between

    # The rates and the share are config keys: a rate of 0.8 always (NeMo resamples to rate x the sample
    # rate, so the clip keeps 0.8 of its samples) makes every draw the same, 0.8 as long.
    cfg.data.speed_perturb_params.merge_with({"prob": 1.0, "min_rate": 0.8, "max_rate": 0.8})
    model.setup_training_data(dataset_config(model, german["train"], cfg.data, train=True))
    slowed = {int(model._train_dl.dataset[0][1]) for _ in range(5)}
    model.setup_validation_data(dataset_config(model, german["train"], cfg.data, train=False))
    original = int(model._validation_dl.dataset[0][1])
    assert len(slowed) == 1 and abs(slowed.pop() / original - 0.8) < 0.01


def test_bucketing_on_a_manifest_trains(tmp_path, german, tiny_base):
    """The other data option documented with speed perturbation: NeMo's Lhotse buckets on a manifest."""
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"),
        run_overrides(
            tmp_path,
            german,
            german["char"],
            f"init.nemo={tiny_base}",
            "data.bucketing=true",
            "data.batch_duration=20",
            "data.num_buckets=2",
            "data.speed_perturb=true",
        ),
    )
    run = finetune(cfg)
    assert (run / "checkpoints" / "run.nemo").is_file()


# The vocabulary folder, the config's kind and the base's kind ---------------------------------------

KIND_CASES = [
    # config kind, folder made by train-tokenizer --kind, base (None: scratch), refused?
    ("char", "char", "char", None),
    ("char", "char", None, None),
    ("char", "bpe", "char", "holds a SentencePiece tokenizer"),
    ("char", "bpe", None, "holds a SentencePiece tokenizer"),
    ("char", "bpe", "bpe", "holds a SentencePiece tokenizer"),
    ("char", "char", "bpe", "cannot take a character target"),
    ("bpe", "bpe", "char", None),
    ("bpe", "bpe", "bpe", None),
    ("bpe", "bpe", None, None),
    ("bpe", "char", "char", "holds a character vocabulary"),
    ("bpe", "char", "bpe", "holds a character vocabulary"),
    ("bpe", "char", None, "holds a character vocabulary"),
]


@pytest.mark.parametrize(("kind", "folder", "base", "refused"), KIND_CASES)
def test_vocabulary_kind_folder_and_base_agree_before_anything_is_built(german, kind, folder, base, refused):
    init = {"char": f"init.nemo={CHAR_BASE}", "bpe": f"init.nemo={BPE_BASE}", None: "init.scratch=true"}[base]
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"), [f"vocab.kind={kind}", f"vocab.dir={german[folder]}", init]
    )
    if refused:
        with pytest.raises(ConfigError, match=refused):
            check_vocabulary(cfg)
    else:
        check_vocabulary(cfg)


def test_a_character_config_on_a_bpe_folder_is_one_error_line(tmp_path, german, capsys):
    """Regression: this trained to exit 0 with SentencePiece pieces as character labels."""
    argv = ["finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"), f"init.nemo={CHAR_BASE}"]
    assert cli(argv + run_overrides(tmp_path, german, german["bpe"])) == 2
    (line,) = error_lines(capsys)
    assert "vocab.kind=char" in line and "SentencePiece" in line and "set vocab.kind=bpe" in line
    assert not (tmp_path / "exp").exists()


def test_a_catalog_bpe_base_is_refused_a_character_target_by_its_catalog_entry(german):
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"),
        [f"vocab.dir={german['char']}", "init.pretrained=stt_en_conformer_ctc_small"],
    )
    with pytest.raises(ConfigError, match="cannot take a character target"):
        check_vocabulary(cfg)


# Bases NeMo cannot build ----------------------------------------------------------------------------


def edited_copy(source: Path, target: Path, edit) -> Path:
    """``source`` with its model_config.yaml changed by ``edit(config)``; every other member as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source, "r:*") as archive, tarfile.open(target, "w:") as out:
        for member in archive.getmembers():
            data = archive.extractfile(member).read() if member.isfile() else None
            if member.isfile() and member.name.endswith("model_config.yaml"):
                config = yaml.safe_load(data)
                edit(config)
                data = yaml.safe_dump(config, allow_unicode=True).encode("utf-8")
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return target


def _removed_class(config):
    config["target"] = "nemo.collections.asr.models.ctc_models.EncDecCTCModelV0"


def _no_target(config):
    config.pop("target")


def _labels_only_at_top(config):
    config["decoder"]["vocabulary"] = []


def _not_a_model(config):
    config["target"] = "nemo.collections.asr.modules.ConvASREncoder"


BROKEN_CHAR_BASES = [
    (_removed_class, "names class nemo.collections.asr.models.ctc_models.EncDecCTCModelV0, which this NeMo does not"),
    (_no_target, "has no `target`"),
    (_labels_only_at_top, "decoder.vocabulary is empty: its labels are only at the top level"),
    (_not_a_model, "cannot be restored by NeMo"),
]


@pytest.mark.parametrize(("edit", "message"), BROKEN_CHAR_BASES, ids=lambda value: getattr(value, "__name__", ""))
def test_a_base_nemo_cannot_build_is_one_line_naming_the_cause(tmp_path, german, capsys, edit, message):
    broken = edited_copy(CHAR_BASE, tmp_path / "old.nemo", edit)
    argv = ["finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"), f"init.nemo={broken}"]
    assert cli(argv + run_overrides(tmp_path, german, german["char"])) == 2
    (line,) = error_lines(capsys)
    assert message in line and "written by NeMo 3.0.0" in line and "ASRModel" not in line
    assert cli(["inspect", "--base", str(CHAR_BASE), "--tuned", str(broken)]) == 2
    (line,) = error_lines(capsys)
    assert message in line and line.startswith(f"error: --tuned {broken}")


def test_an_old_tokenizer_type_name_is_named(tmp_path, capsys):
    import numpy as np
    import soundfile

    def old_type(config):
        config["tokenizer"]["type"] = "google_sentencepiece"

    broken = edited_copy(BPE_BASE, tmp_path / "old_bpe.nemo", old_type)
    audio = tmp_path / "a.wav"
    soundfile.write(audio, np.zeros(8000, dtype=np.float32), 16000)
    assert cli(["transcribe", "--model", str(broken), str(audio)]) == 2
    (line,) = error_lines(capsys)
    assert "tokenizer.type is 'google_sentencepiece'" in line and "written by NeMo 3.0.0" in line
    with pytest.raises(InputError, match="tokenizer.type is 'google_sentencepiece'"):
        from asr_transfer.inference.model import load_model

        load_model(str(broken), "cpu")


# Exports hold no training paths ---------------------------------------------------------------------


def exported_config(path: Path) -> str:
    with tarfile.open(path, "r:*") as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("model_config.yaml"))
        return archive.extractfile(member).read().decode("utf-8")


def test_an_export_of_a_bpe_run_names_no_file_of_this_machine(tmp_path, german):
    """The tokenizer folder a BPE model was built from and the run's manifests stay behind; stock NeMo
    still restores the export with its packed tokenizer."""
    from nemo.collections.asr.models import ASRModel

    cfg = load_config(
        str(CONF / "tiny_fastconformer_bpe.yaml"),
        run_overrides(
            tmp_path,
            german,
            german["bpe"],
            f"init.nemo={BPE_BASE}",
            "trainer.max_steps=1",
            "trainer.val_check_interval=1",
        ),
    )
    run = finetune(cfg)
    out = tmp_path / "export" / "de.nemo"
    assert cli(["export", "--run", str(run), "--out", str(out)]) == 0
    text = exported_config(out)
    for leaked in (str(tmp_path), str(Path(german["bpe"]).parent.parent), "train.json", "dev.json"):
        assert leaked not in text
    moved = tmp_path / "elsewhere" / "de.nemo"
    moved.parent.mkdir()
    shutil.move(out, moved)
    restored = ASRModel.restore_from(str(moved), map_location="cpu")
    assert restored.tokenizer.vocab_size == 48


# Text compared in another form than it was trained ---------------------------------------------------


def with_texts(source: str, target: Path, texts: list[str], rows: list[int] | None = None) -> Path:
    """The manifest ``source`` (its lines ``rows``, default all) with ``texts`` as transcripts."""
    import json

    lines = [json.loads(line) for line in Path(source).read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = [lines[row] for row in rows] if rows is not None else lines
    lines = [{**line, "text": text} for line, text in zip(lines, texts, strict=False)]
    target.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return target


def test_evaluate_scores_references_in_their_trained_form(tmp_path, german, capsys):
    """Regression: the same hypotheses scored WER 0.33 against „quoted“ references with a final period and
    0.0 against the normalized text; a reference of only „“ or ¿? was scored as a one-word reference."""
    import json

    from asr_transfer.inference.evaluate import evaluate
    from asr_transfer.inference.model import load_model

    model = load_model(str(CHAR_BASE), "cpu")
    evaluate(str(CHAR_BASE), german["dev"], str(tmp_path / "h"), model=model)
    decoded = [json.loads(line)["hypothesis"] for line in (tmp_path / "h" / "hypotheses.jsonl").open()]
    rows = [row for row, text in enumerate(decoded) if text.strip()][:4]
    assert len(rows) == 4, "the base transcribes too few dev clips for this test"
    said = [decoded[row] for row in rows]
    written = [f"„{said[0].capitalize()}.“", said[1], "„“", "¿?", f"{said[2].upper()}!", said[3]]
    quoted = with_texts(german["dev"], tmp_path / "quoted.json", written, rows[:2] + rows[:2] + rows[2:])
    for lang in (None, "de"):
        summary = evaluate(str(CHAR_BASE), str(quoted), model=model, lang=lang)
        assert summary["wer"] == 0.0 and summary["utterances"] == 4
        assert summary["references"]["skipped"] == {"empty_text": 2} and summary["references"]["changed"] == 2
    assert cli(["evaluate", "--model", str(CHAR_BASE), "--manifest", str(quoted), "--lang", "de"]) == 0
    assert "2 normalized, 2 skipped (empty_text)" in capsys.readouterr().out
    from asr_transfer.lm.train import train_lm
    from asr_transfer.lm.tune import tune_lm

    lm = tmp_path / "lm.arpa"
    train_lm(str(CHAR_BASE), str(lm), 3, manifests=[str(quoted)])
    tuned = tune_lm(str(CHAR_BASE), str(lm), str(quoted), str(tmp_path / "p.json"), [0.5], [0.0], beam_size=2)
    assert tuned["dev"]["greedy"] == 0.0 and tuned["references"]["skipped"] == {"empty_text": 2}


def test_a_manifest_whose_references_all_normalize_to_nothing_is_one_error(tmp_path, german, capsys):
    empty = with_texts(german["dev"], tmp_path / "empty.json", ["„“", "¿?", "…", "!", "–", "?"], list(range(6)))
    assert cli(["evaluate", "--model", str(CHAR_BASE), "--manifest", str(empty)]) == 2
    (line,) = error_lines(capsys)
    assert "no reference" in line and "6 skipped (empty_text)" in line


def test_tokenizers_learn_only_forms_the_normalized_text_holds(tmp_path, german):
    """Regression: full-width ，？ＡＢＣ in Cantonese and a German word in NFD gave SentencePiece
    vocabularies with forms the text never holds, and decode(encode(text)) differed from the text."""
    import unicodedata

    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer

    from asr_transfer.languages import load_language
    from asr_transfer.tokenizers.train import read_labels, train_tokenizer

    cases = {
        "de": [unicodedata.normalize("NFD", "Größe Übermut für Bären.")] * 3 + ["Kannst du fünf Würste bewegen?"] * 3,
        "yue": ["我哋今日去飲茶，ＡＢＣ？", "你食咗飯未？", "佢好鍾意睇ＣＤ。", "我哋聽日見，好唔好？"] * 2,
    }
    for lang, texts in cases.items():
        manifest = with_texts(german["train"], tmp_path / f"{lang}.json", texts)
        language = load_language(lang)
        normalized = [language.normalize(text).text for text in texts]
        folder = train_tokenizer([str(manifest)], lang, "bpe", tmp_path / "tok", vocab_size=30)
        pieces = "".join(read_labels(folder / "vocab.txt"))
        assert not set(pieces) - set("".join(normalized)) - set("▁#")
        tokenizer = SentencePieceTokenizer(str(folder / "tokenizer.model"))
        for text in normalized:
            assert tokenizer.ids_to_text(tokenizer.text_to_ids(text)) == text
        if lang == "de":
            labels = read_labels(train_tokenizer([str(manifest)], lang, "char", tmp_path / "tok") / "vocab.txt")
            assert "ö" in labels and "\u0308" not in labels


def test_train_lm_normalizes_manifest_text_and_what_it_excludes(tmp_path, german):
    """Manifest text not made by prepare-* (quotes, capitals) was tokenized as written: rejected for
    characters the model lacks, or kept with other tokens than decoding produces."""
    from asr_transfer.lm.train import train_lm

    texts = ["„Kannst du das Haus sehen?“", "KANNST DU DAS HAUS SEHEN!", "wir sehen das boot", "Wir sehen das Boot."]
    manifest = with_texts(german["train"], tmp_path / "raw.json", texts)
    report = train_lm(str(CHAR_BASE), str(tmp_path / "lm.arpa"), 3, manifests=[str(manifest)])
    assert report["sentences"] == 4 and report["rejected"] == {}
    held_out = with_texts(german["dev"], tmp_path / "dev.json", ["Wir sehen das Boot!"])
    report = train_lm(str(CHAR_BASE), str(tmp_path / "lm2.arpa"), 3, manifests=[str(manifest)], exclude=[str(held_out)])
    assert report["sentences"] == 2 and report["excluded"] == 2


def test_finetune_refuses_a_manifest_that_is_not_normalized_for_its_language(tmp_path, german, capsys):
    raw = with_texts(german["train"], tmp_path / "raw.json", ["Kannst du fünf Würste bewegen?"] * 3)
    argv = ["finetune", "--config", str(CONF / "tiny_quartznet_char.yaml"), f"init.nemo={CHAR_BASE}", "lang=de"]
    overrides = run_overrides(tmp_path, german, german["char"])
    overrides = [
        f"data.train_manifest={raw}" if item.startswith("data.train_manifest=") else item for item in overrides
    ]
    assert cli(argv + overrides) == 2
    (line,) = error_lines(capsys)
    assert "3 lines of the training manifest" in line and "'kannst du fünf würste bewegen'" in line
