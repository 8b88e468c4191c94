"""Every route of the mission, run as a new user runs it: the recipe through stages 0-5 from a folder
outside the repository, with relative paths and a shipped trained base, on a tiny synthetic release.

Each route's exported .nemo must restore in stock NeMo (a process that never imports this package) with
the expected class and vocabulary; its transcripts must hold only the target alphabet (no tokenizer
artifacts); the export must be the best checkpoint by the language's primary metric; and every output
a stage announces must exist.
"""

from __future__ import annotations

import csv
import glob
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from asr_transfer.bases import REPO_ROOT, lookup
from asr_transfer.languages import load_language
from asr_transfer.manifests.prepare_cv import prepare_common_voice
from asr_transfer.synth.synth_cv import synth_cv
from asr_transfer.tokenizers.train import read_labels
from tests.conftest import quiet_options, read_lines, run_recipe_process

STEPS = "trainer.max_steps=6 trainer.val_check_interval=2 data.batch_size=4 trainer.enable_progress_bar=false"
# Routes that also run stage 6 (LM built, tuned on dev, test decoded with it): one char, one BPE vocabulary.
LM_ROUTES = ("de_char_from_en_char", "de_bpe_from_en_bpe")
# Routes whose stages after data preparation repeat another route's with the same base and config run
# stages 0-2 (their locale's manifests and vocabulary): es and ru fine-tune, evaluate and export as de_char
# does (the same shipped base and config; only the language file differs, and stages 3-5 read none of it
# but the metric, WER for all three); a vocabulary outside Latin letters goes through export and stock
# NeMo in the yue route. zh-HK is the yue recipe on a zh-HK release.
DATA_ONLY_ROUTES = ("es_char_from_en_char", "ru_char_from_en_char", "zh-HK_char_from_zh_char")
# Routes that restore their base the way a user without --init_nemo does: the recipe's --base picks the
# catalog's pretrained model, resolved offline from a cache this test seeds with the shipped tiny base of
# the same family (route: (--base, catalog name, cache)). The yue route also runs with --verbose true.
PRETRAINED_ROUTES = {
    "de_bpe_from_en_bpe": ("conformer", "stt_en_conformer_ctc_small", "huggingface"),
    "yue_char_from_zh_char": ("citrinet", "stt_zh_citrinet_512", "ngc"),
}
VERBOSE_ROUTES = ("yue_char_from_zh_char",)
# Routes that train from Lhotse Shar shards (--shar N) instead of WAV clips.
SHAR_ROUTES = {"de_bpe_from_en_char": 2}
STAGE_LINE = re.compile(r"Stage (\d+): .*?: (.*) -> (.*)$")

# route: (recipe, language, shipped base, fine-tuning config (None: --base's), vocabulary folder, NeMo class)
ROUTES = {
    "de_char_from_en_char": (
        "de",
        "de",
        "en_tiny_quartznet_char",
        "tiny_quartznet_char.yaml",
        "char",
        "EncDecCTCModel",
    ),
    "es_char_from_en_char": (
        "es",
        "es",
        "en_tiny_quartznet_char",
        "tiny_quartznet_char.yaml",
        "char",
        "EncDecCTCModel",
    ),
    "ru_char_from_en_char": (
        "ru",
        "ru",
        "en_tiny_quartznet_char",
        "tiny_quartznet_char.yaml",
        "char",
        "EncDecCTCModel",
    ),
    "de_bpe_from_en_bpe": (
        "de",
        "de",
        "en_tiny_fastconformer_bpe128",
        None,
        "spe_bpe_v64",
        "EncDecCTCModelBPE",
    ),
    "de_bpe_from_en_char": (
        "de",
        "de",
        "en_tiny_quartznet_char",
        "tiny_fastconformer_bpe.yaml",
        "spe_bpe_v64",
        "EncDecCTCModelBPE",
    ),
    "yue_char_from_zh_char": (
        "yue",
        "yue",
        "zh_tiny_quartznet_char",
        None,
        "char",
        "EncDecCTCModel",
    ),
    "zh-HK_char_from_zh_char": (
        "yue",
        "zh-HK",
        "zh_tiny_quartznet_char",
        "tiny_quartznet_char.yaml",
        "char",
        "EncDecCTCModel",
    ),
}

STOCK_NEMO = """
import json, sys
from nemo.collections.asr.models import ASRModel
model = ASRModel.restore_from(sys.argv[1], map_location="cpu")
tokenizer = getattr(model, "tokenizer", None)
print(json.dumps({
    "class": type(model).__name__,
    "vocabulary": list(model.decoder.vocabulary),
    "pieces": [tokenizer.ids_to_tokens([i])[0] for i in range(tokenizer.vocab_size)] if tokenizer else None,
    "ours_imported": any(name.startswith("asr_transfer") for name in sys.modules),
}))
"""


def run_recipe(cwd: Path, *args: str, timeout: int = 600, env: dict | None = None) -> str:
    return run_recipe_process(cwd, *args, timeout=timeout, env=env).stdout


def seeded_cache_env(tmp_path: Path, name: str, cache: str, shipped: Path) -> dict:
    """Offline Hugging Face and NeMo caches holding ``shipped`` as the catalog base ``name``, as the
    environment a recipe's commands read them from."""
    from tests.test_bases import seed_hf_cache, seed_ngc_cache

    hub, nemo = tmp_path / "hf_hub", tmp_path / "nemo_cache"
    if cache == "huggingface":
        entry = lookup(name).huggingface
        seed_hf_cache(hub, entry["repo"], entry["file"], shipped)
    else:
        seed_ngc_cache(nemo, f"{name}.nemo", shipped)
    return {"HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "NEMO_CACHE_DIR": str(nemo)}


def expand(announced: str) -> list[str]:
    """`data/{train,dev,test}.json` and `eval_before_*` as the paths they stand for."""
    braces = re.search(r"\{([^}]*)\}", announced)
    if braces:
        return [announced.replace(braces.group(0), part) for part in braces.group(1).split(",")]
    return [announced]


def assert_announced_outputs_exist(cwd: Path, stdout: str) -> None:
    stages = [STAGE_LINE.search(line) for line in stdout.splitlines()]
    stages = [match for match in stages if match]
    numbers = [int(match.group(1)) for match in stages]
    assert numbers == sorted(numbers), "stages ran out of order"
    for match in stages:
        for path in expand(match.group(3).strip()):
            if path != "-":
                assert glob.glob(str(cwd / path)), f"stage {match.group(1)} announced {path}, which does not exist"


def restore_in_stock_nemo(model: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", STOCK_NEMO, str(model)], cwd=model.parent, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    restored = json.loads(done.stdout.strip().splitlines()[-1])
    assert not restored["ours_imported"]
    return restored


def assert_clean_transcripts(hypotheses: Path, lang: str) -> None:
    language = load_language(lang)
    records = read_lines(hypotheses)
    assert records
    for record in records:
        text = record["hypothesis"]
        assert "▁" not in text and "<unk>" not in text, text
        assert all(language.allows(char) for char in text), f"{text!r} leaves the {lang} alphabet"


def assert_export_is_best(run: Path, exported: Path, lang: str) -> None:
    """The exported weights are those of the best checkpoint, and that checkpoint holds the best value of
    the language's primary metric on the dev curve."""
    from nemo.collections.asr.models import ASRModel

    metric = f"val_{load_language(lang).metric}"
    best = [path for path in (run / "checkpoints").glob("*.ckpt") if not path.name.endswith("-last.ckpt")]
    assert len(best) == 1 and f"{metric}=" in best[0].name, [path.name for path in best]
    with open(run / "curves" / "metrics.csv", encoding="utf-8") as handle:
        curve = [float(row[metric]) for row in csv.DictReader(handle) if row[metric]]
    assert len(curve) >= 2
    value = float(re.search(rf"{metric}=([0-9.]+)", best[0].name).group(1).rstrip("."))
    assert value == pytest.approx(min(curve), abs=1e-4)
    checkpoint = torch.load(best[0], map_location="cpu", weights_only=False)["state_dict"]
    model = ASRModel.restore_from(str(exported), map_location="cpu")
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, checkpoint[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("route", list(ROUTES))
def test_route(route, tmp_path):
    recipe, lang, base_name, config, vocab_name, model_class = ROUTES[route]
    base = REPO_ROOT / lookup(base_name).shipped
    synth_cv(lang, 24, str(tmp_path / "cv"), seed=5, progress=False)
    args = [str(REPO_ROOT / "recipes" / recipe / "run.sh"), "cv", "--out", "exp", "--bpe_size", "64"]
    env = {}
    if route in PRETRAINED_ROUTES:
        base_option, pretrained, cache = PRETRAINED_ROUTES[route]
        env = seeded_cache_env(tmp_path, pretrained, cache, base)
        args += ["--base", base_option, "--overrides", f"{STEPS} data.num_workers=0"]
        base = Path(pretrained)  # the export is named after the catalog base
    else:
        args += ["--init_nemo", str(base), "--config", str(REPO_ROOT / "recipes" / "conf" / config)]
        args += ["--overrides", STEPS]
    if lang != recipe:
        args += ["--lang", lang]
    if route in VERBOSE_ROUTES:
        args += ["--verbose", "true"]
    if route in SHAR_ROUTES:
        args += ["--shar", str(SHAR_ROUTES[route])]
    last_stage = 6 if route in LM_ROUTES else 2 if route in DATA_ONLY_ROUTES else 5
    done = run_recipe_process(tmp_path, *args, "--stop_stage", str(last_stage), env=env)
    stdout = done.stdout
    assert [f"Stage {n}: " in stdout for n in range(last_stage + 1)] == [True] * (last_stage + 1)
    # --verbose true: NeMo's INFO lines reach the terminal; without it they go to the run folder only.
    assert ("[NeMo I" in stdout + done.stderr) == (route in VERBOSE_ROUTES and last_stage >= 3)
    if route in PRETRAINED_ROUTES:
        conf_name = {"conformer": "conformer_ctc_bpe", "citrinet": "citrinet_zh_char"}[PRETRAINED_ROUTES[route][0]]
        assert f"fine-tune ({conf_name})" in stdout

    exp = tmp_path / "exp"
    if route in DATA_ONLY_ROUTES:
        assert_announced_outputs_exist(tmp_path, stdout)
        assert_data_in_alphabet(exp, lang, read_labels(exp / "tokenizers" / lang / vocab_name / "vocab.txt"))
        return
    exported = exp / f"{lang}_from_{base.stem}_{vocab_name}.nemo"
    assert exported.is_file(), sorted(path.name for path in exp.iterdir())
    assert_announced_outputs_exist(tmp_path, stdout)
    restored = restore_in_stock_nemo(exported)
    assert restored["class"] == model_class
    vocab_dir = exp / "tokenizers" / lang / vocab_name
    if vocab_name == "char":
        assert restored["vocabulary"] == read_labels(vocab_dir / "vocab.txt")
    else:
        import sentencepiece

        target = sentencepiece.SentencePieceProcessor(model_file=str(vocab_dir / "tokenizer.model"))
        assert restored["pieces"] == [target.id_to_piece(i) for i in range(target.get_piece_size())]
    for split in ("dev", "test"):
        assert_clean_transcripts(exp / f"eval_{split}" / "hypotheses.jsonl", lang)
    assert_export_is_best(exp / "finetune" / "run" / "v1", exported, lang)
    if route in SHAR_ROUTES:
        trained = yaml.safe_load((exp / "finetune" / "run" / "v1" / "finetune_config.yaml").read_text())
        shards = sorted(path.name for path in (tmp_path / trained["data"]["shar_path"]).rglob("cuts.*.jsonl.gz"))
        assert len(shards) == SHAR_ROUTES[route], shards
    if route in LM_ROUTES:
        assert_lm_stage(exp, lang)


def assert_data_in_alphabet(exp: Path, lang: str, vocabulary: list[str]) -> None:
    """Every split's transcripts are in the language's alphabet; the training transcripts are written with
    the vocabulary (made from them: dev and test may hold characters training never saw)."""
    language = load_language(lang)
    for split in ("train", "dev", "test"):
        records = read_lines(exp / "data" / f"{split}.json")
        assert records, split
        for record in records:
            assert all(language.allows(char) for char in record["text"]), record["text"]
            assert split != "train" or set(record["text"]) <= set(vocabulary), record["text"]


def assert_lm_stage(exp: Path, lang: str) -> None:
    """Stage 6 built an LM without dev/test sentences, tuned it on dev and decoded test with it."""
    built = json.loads(next((exp / "lm").glob("*.arpa.json")).read_text())
    assert built["excluded"] > 0 and built["sentences"] > 0
    assert any(source.endswith("validated_sentences.tsv") for source in built["read"])
    tuned = json.loads((exp / "lm" / "params.json").read_text())
    assert tuned["dev_manifest"].endswith("dev.json") and len(tuned["grid"]) > 1
    summary = json.loads((exp / "eval_test_lm" / "summary.json").read_text())
    assert summary["decoding"].startswith("beam") and "+lm(" in summary["decoding"]
    assert_clean_transcripts(exp / "eval_test_lm" / "hypotheses.jsonl", lang)


@pytest.mark.slow
def test_route_domain_keeps_the_vocabulary(tmp_path):
    """Domain adaptation: the English base on a held-out accent, with half the original data replayed."""
    base = REPO_ROOT / lookup("en_tiny_quartznet_char").shipped
    new = synth_cv("en", 16, str(tmp_path / "scot"), seed=1, accents=["en-gb-scotland"], progress=False)
    old = synth_cv("en", 12, str(tmp_path / "us"), seed=2, accents=["en-us"], progress=False)
    prepare_common_voice(str(new), str(tmp_path / "new"), "en", quiet_options())
    prepare_common_voice(str(old), str(tmp_path / "old"), "en", quiet_options())
    stdout = run_recipe(
        tmp_path,
        str(REPO_ROOT / "recipes" / "domain" / "run.sh"),
        *("--model", str(base), "--train", "new/train.json", "--dev", "new/dev.json", "--lang", "en"),
        *("--original_dev", "old/dev.json", "--original_train", "old/train.json", "--mix_original", "0.5"),
        *("--out", "domain", "--overrides", STEPS),
    )
    assert_announced_outputs_exist(tmp_path, stdout)
    report = (tmp_path / "domain" / "RESULTS.md").read_text()
    assert "| new domain |" in report and "| original domain (forgetting) |" in report
    mixed = read_lines(tmp_path / "domain" / "train_mix.json")
    assert len(mixed) == len(read_lines(tmp_path / "new" / "train.json")) + round(
        0.5 * len(read_lines(tmp_path / "old" / "train.json"))
    )
    exported = tmp_path / "domain" / f"en_from_{base.stem}_tuned.nemo"
    restored = restore_in_stock_nemo(exported)
    assert restored["class"] == "EncDecCTCModel"
    assert restored["vocabulary"] == restore_in_stock_nemo(base)["vocabulary"]
    for split in ("new", "original"):
        assert_clean_transcripts(tmp_path / "domain" / f"eval_after_{split}" / "hypotheses.jsonl", "en")
    assert_export_is_best(tmp_path / "domain" / "finetune" / "run" / "v1", exported, "en")
