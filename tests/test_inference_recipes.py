"""Evaluate, transcribe, export; and the recipes' stages end to end on tiny synthetic corpora."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from asr_transfer.errors import InputError
from asr_transfer.inference.evaluate import evaluate
from asr_transfer.inference.evaluate import main as evaluate_main
from asr_transfer.inference.export import export
from asr_transfer.inference.transcribe import main as transcribe_main
from tests.conftest import REPO, read_lines

FAST = (
    "trainer.max_steps=2 trainer.val_check_interval=2 data.batch_size=4 data.num_workers=0 "
    "trainer.enable_progress_bar=false"
)


def run_script(*args, timeout=300):
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_evaluate_greedy_and_beam(tmp_path, tiny_base, prepared_de):
    out, _ = prepared_de
    manifest = str(tmp_path / "en.json")
    entries = read_lines(out / "dev.json")[:4]
    with open(manifest, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps({**entry, "text": "hello there"}) + "\n")
    greedy = evaluate(tiny_base, manifest, str(tmp_path / "greedy"))
    beam = evaluate(tiny_base, manifest, str(tmp_path / "beam"), decoding="beam", beam_size=3)
    for summary in (greedy, beam):
        assert summary["utterances"] == 4 and summary["primary_metric"] == "wer"
        assert 0 <= summary["cer"] and summary["wer"] >= 0
    hypotheses = read_lines(tmp_path / "greedy" / "hypotheses.jsonl")
    assert len(hypotheses) == 4 and hypotheses[0]["reference"] == "hello there"
    assert evaluate_main(["--model", tiny_base, "--manifest", manifest, "--tolerance", "0.0"]) == 1
    assert evaluate_main(["--model", tiny_base, "--manifest", manifest, "--tolerance", "1000"]) == 0


def test_transcribe_files_and_manifest(tmp_path, tiny_base, prepared_de, capsys):
    out, _ = prepared_de
    wav = read_lines(out / "dev.json")[0]["audio_filepath"]
    assert transcribe_main(["--model", tiny_base, wav]) == 0
    assert capsys.readouterr().out.startswith(f"{wav}\t")
    assert (
        transcribe_main(
            ["--model", tiny_base, "--manifest", str(out / "dev.json"), "--out", str(tmp_path / "pred.json")]
        )
        == 0
    )
    assert all("pred_text" in entry for entry in read_lines(tmp_path / "pred.json"))
    with pytest.raises(SystemExit) as exited:
        transcribe_main(["--model", tiny_base])
    assert exited.value.code == 2


def test_export_loads_in_stock_nemo_without_this_package(tmp_path, tiny_base, prepared_de):
    out, _ = prepared_de
    exported = tmp_path / "model.nemo"
    export(tiny_base, str(exported))
    wav = read_lines(out / "dev.json")[0]["audio_filepath"]
    program = (
        "import sys\n"
        "from nemo.collections.asr.models import ASRModel\n"
        f"model = ASRModel.restore_from({str(exported)!r}, map_location='cpu')\n"
        f"text = model.transcribe([{wav!r}], verbose=False)\n"
        "assert not [name for name in sys.modules if name.startswith('asr_transfer')]\n"
        "train_ds = model.cfg.get('train_ds')\n"
        "assert train_ds is None or train_ds.get('manifest_filepath') is None\n"
        "print('LOADED', type(model).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ""},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED EncDecCTCModel" in result.stdout


def test_export_of_a_folder_without_models_is_an_error(tmp_path):
    with pytest.raises(InputError, match="holds no checkpoints/"):
        export(str(tmp_path), str(tmp_path / "x.nemo"))


@pytest.mark.slow
def test_demo_recipe_writes_results_and_plot(tmp_path, tiny_base):
    out = tmp_path / "demo"
    result = run_script(
        "recipes/demo/run.sh", "--out", str(out), "--clips", "30", "--steps", "4", "--base", tiny_base, timeout=400
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    results = (out / "RESULTS.md").read_text()
    assert "| transfer from English |" in results and "| from scratch |" in results
    assert (out / "dev_wer.png").stat().st_size > 10_000
    assert (out / "model_de_transfer.nemo").exists()
    assert "| greedy |" in results and "| beam8 |" in results and "+lm(alpha=" in results


def test_the_primary_metric_is_the_language_the_model_records_or_lang_gives(tmp_path, monkeypatch, capsys):
    """One rule for evaluate (and tune-lm, filter): the language file of --lang, else of the language the
    model records (finetune writes it into the model's config), decides WER or CER; no text heuristic."""
    from nemo.collections.asr.models import ASRModel
    from omegaconf import open_dict

    from asr_transfer.cli import main as cli_main
    from asr_transfer.languages import MODEL_LANGUAGE_KEY
    from tests.test_audio_inputs import LONG, MODEL, write_speech

    languages = tmp_path / "languages"
    languages.mkdir()
    # English judged by CER: Latin references, so no rule read from the text could pick CER
    (languages / "xx.yaml").write_text("inherit: en\nname: Test\nmetric: cer\n", encoding="utf-8")
    monkeypatch.setenv("ASR_TRANSFER_LANGUAGES", str(languages))
    model = ASRModel.restore_from(MODEL, map_location="cpu")
    with open_dict(model.cfg):
        model.cfg[MODEL_LANGUAGE_KEY] = "xx"
    recorded = tmp_path / "xx.nemo"
    model.save_to(str(recorded))
    write_speech(tmp_path / "clips" / "a.wav", LONG, 16000)
    manifest = tmp_path / "test.json"
    manifest.write_text(json.dumps({"audio_filepath": "clips/a.wav", "text": LONG.title() + "."}) + "\n")

    summary = evaluate(str(recorded), str(manifest))  # restored by stock NeMo, the key and all
    assert (summary["language"], summary["primary_metric"]) == ("xx", "cer")
    assert summary["references"]["normalized_by"] == "xx" and summary["references"]["changed"] == 1

    # --tolerance judges the primary metric: a value between CER and WER passes CER and fails WER
    assert summary["cer"] < summary["wer"]
    middle = str((summary["cer"] + summary["wer"]) / 2)
    argv = ["evaluate", "--model", str(recorded), "--manifest", str(manifest), "--tolerance", middle]
    assert cli_main(argv) == 0
    assert cli_main([*argv, "--lang", "en", "--out", str(tmp_path / "en")]) == 1  # --lang wins: WER
    given = json.loads((tmp_path / "en" / "summary.json").read_text(encoding="utf-8"))
    assert (given["language"], given["primary_metric"]) == ("en", "wer")
    assert (given["wer"], given["cer"]) == (summary["wer"], summary["cer"])

    monkeypatch.setenv("ASR_TRANSFER_LANGUAGES", str(tmp_path / "nowhere"))
    capsys.readouterr()
    assert cli_main(["evaluate", "--model", str(recorded), "--manifest", str(manifest)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "records language 'xx'" in error[0] and "give --lang" in error[0], error
