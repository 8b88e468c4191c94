"""The command-line tools no recipe runs, run as a user runs them (``python tools/X.py ...`` from the repo
root) with every option they document: tools/bench_onnx.py (NeMo against its ONNX export in ONNX Runtime and
sherpa-onnx) on the shipped English char base and a few synthetic clips, and tools/real_size.py for its
cheapest family and for its activation measurement. Speeds are not asserted beyond being measured; what the
tables say about the models (agreement, sizes, vocabularies, what is left on disk) is. A user's mistake is
one ``error:`` line and exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asr_transfer.fileio import read_manifest
from tests.conftest import REPO
from tests.test_errors import assert_one_error_line

BASE = REPO / "recipes" / "en_base" / "model" / "en_tiny_quartznet_char.nemo"  # bench_onnx's default --model
RUNTIMES = (
    "nemo transcribe, batch 8",
    "nemo transcribe, batch 1",
    "onnxruntime (nemo features + model.onnx)",
    "onnxruntime (model.onnx on features only)",
    "sherpa-onnx (waveform in)",
)
CLIPS = 10  # the fewest bench_onnx synthesizes (train, dev and test each need speakers)
FAMILY = "conformer_ctc_small"  # real_size's cheapest family: 13M parameters, one route
GERMAN_BPE = 64  # real_size.GERMAN_BPE: the target vocabulary every BPE route fine-tunes to


def run_tool(script: str, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, f"tools/{script}", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def assert_user_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert_one_error_line(result.stderr, *fragments)


# ----------------------------------------------------------------------------------------------------
# tools/bench_onnx.py


def table_rows(stdout: str) -> dict[str, tuple[float, float, int]]:
    """The printed table: runtime -> (utterances per second, ratio to NeMo batch 8, transcripts equal NeMo's)."""
    rows = {}
    for line in stdout.splitlines():
        for name in RUNTIMES:
            if line.startswith(name):
                rate, ratio, same = line[len(name) :].split()
                rows[name] = (float(rate), float(ratio), int(same))
    return rows


def check_bench(result: subprocess.CompletedProcess, figures: dict, manifest: Path, threads: int) -> dict:
    """What every bench_onnx run must report: each runtime measured, the table and the JSON agreeing, NeMo's
    own and ONNX Runtime's transcripts identical; returns the results by runtime."""
    entries = list(read_manifest(str(manifest)))
    assert figures["utterances"] == len(entries) == CLIPS
    results = figures["results"]
    assert tuple(results) == RUNTIMES
    for name, row in results.items():
        assert row["utterances_per_second"] > 0, name
        assert 0 <= row["same_as_nemo"] <= CLIPS, name
        ratio = row["utterances_per_second"] / results[RUNTIMES[0]]["utterances_per_second"]
        assert row["ratio_to_nemo_batch8"] == pytest.approx(ratio, abs=0.01), name
    assert results[RUNTIMES[0]]["ratio_to_nemo_batch8"] == 1.0
    # NeMo at batch 1, and ONNX Runtime on NeMo's features, compute the same model: the same transcripts
    for name in RUNTIMES[:4]:
        assert results[name]["same_as_nemo"] == CLIPS, (name, results[name])
    minutes = sum(float(entry["duration"]) for entry in entries) / 60
    header = f"{CLIPS} utterances ({minutes:.1f} min of audio), {BASE.name}, {threads} thread(s)"
    assert header in result.stdout, result.stdout[-3000:]
    printed = table_rows(result.stdout)
    assert printed == {
        name: (row["utterances_per_second"], row["ratio_to_nemo_batch8"], row["same_as_nemo"])
        for name, row in results.items()
    }, result.stdout[-3000:]
    return results


@pytest.fixture(scope="module")
def bench_default(tmp_path_factory) -> dict:
    """tools/bench_onnx.py on its default model (the shipped English char base), 10 clips it synthesizes
    into --work, one pass, one thread; its work folder, stdout and --json figures."""
    root = tmp_path_factory.mktemp("bench_onnx")
    work, out = root / "work", root / "default.json"
    result = run_tool(
        "bench_onnx.py",
        *("--clips", str(CLIPS), "--repeats", "1", "--threads", "1", "--work", str(work), "--json", str(out)),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"work": work, "result": result, "figures": json.loads(out.read_text())}


@pytest.mark.slow
def test_bench_onnx_measures_every_runtime_on_clips_it_synthesizes(bench_default):
    """--clips 10 --work --repeats 1 --threads 1 --json on the default model: the clips are synthesized into
    --work and the model exported there; every runtime's speed is measured, the printed table and the JSON
    agree, NeMo batch 1 and ONNX Runtime transcribe as NeMo batch 8 does."""
    work, result = bench_default["work"], bench_default["result"]
    manifest = work / f"en_{CLIPS}" / "all.json"
    assert f"synthesizing {CLIPS} English clips into {manifest.parent} (once)" in result.stdout
    assert (work / "onnx_en_tiny_quartznet_char" / "model.onnx").is_file()
    assert (work / "onnx_en_tiny_quartznet_char" / "tokens.txt").is_file()
    check_bench(result, bench_default["figures"], manifest, threads=1)


@pytest.mark.slow
def test_bench_onnx_exact_pad_gives_sherpa_onnx_the_nemo_framing(bench_default, tmp_path):
    """--exact-pad with --model and --manifest given (the first run's clips, so nothing is synthesized) and
    --repeats 2: a separate export (onnx_<model>_exact_pad), and sherpa-onnx, which frames the audio as
    exact_pad does, now reads (nearly) every clip as NeMo does; without it, its frames are 5 ms off NeMo's
    and it reads fewer (measured: 10 of 10 against 3 of 10)."""
    manifest = bench_default["work"] / f"en_{CLIPS}" / "all.json"
    work, out = tmp_path / "work", tmp_path / "exact_pad.json"
    result = run_tool(
        "bench_onnx.py",
        *("--model", str(BASE), "--manifest", str(manifest), "--exact-pad", "--repeats", "2", "--threads", "1"),
        *("--work", str(work), "--json", str(out)),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "synthesizing" not in result.stdout
    assert sorted(path.name for path in work.iterdir()) == ["onnx_en_tiny_quartznet_char_exact_pad"]
    results = check_bench(result, json.loads(out.read_text()), manifest, threads=1)
    sherpa = results["sherpa-onnx (waveform in)"]["same_as_nemo"]
    without = bench_default["figures"]["results"]["sherpa-onnx (waveform in)"]["same_as_nemo"]
    assert sherpa >= 0.9 * CLIPS and sherpa > without, (sherpa, without)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--model", "{tmp}/missing.nemo"), ("--model {tmp}/missing.nemo", "does not exist")),
        (("--repeats", "0"), ("--repeats 0 is below 1",)),
        (("--threads", "0"), ("--threads 0 is below 1",)),
    ],
    ids=["missing-model", "zero-repeats", "zero-threads"],
)
def test_bench_onnx_user_error_is_one_line_before_any_work(tmp_path, args, fragments):
    """A missing --model, 0 repeats or 0 threads: one error line and exit 2, before any clip is
    synthesized into --work (0 repeats was a ZeroDivisionError after the whole benchmark, 0 threads
    torch's RuntimeError, a missing model an error only after the clips were made)."""
    work = tmp_path / "work"
    args = [arg.format(tmp=tmp_path) for arg in args]
    result = run_tool("bench_onnx.py", *args, "--clips", str(CLIPS), "--work", str(work), timeout=300)
    assert_user_error(result, *(fragment.format(tmp=tmp_path) for fragment in fragments))
    assert not work.exists()


def test_bench_onnx_too_few_clips_is_one_error_line(tmp_path):
    """--clips 0: one error line naming --clips and its minimum, exit 2, no JSON written."""
    out = tmp_path / "bench.json"
    result = run_tool("bench_onnx.py", "--clips", "0", "--work", str(tmp_path / "work"), "--json", str(out))
    assert_user_error(result, "--clips is below 10", "at least 10")
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------
# tools/real_size.py


def family_run(out: Path, work: Path, *extra: str) -> dict:
    """tools/real_size.py --families conformer_ctc_small; its output, results and work folder's listing."""
    args = ("--families", FAMILY, "--out", str(out), "--work", str(work), *extra)
    result = run_tool("real_size.py", *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    folder = work / "families" / FAMILY
    return {
        "result": result,
        "command": " ".join(["python", "tools/real_size.py", *args]),
        "results": json.loads((out / "results.json").read_text()),
        "markdown": (out / "RESULTS.md").read_text(),
        "left": sorted(path.name for path in folder.iterdir()),
    }


@pytest.fixture(scope="module")
def real_size_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real_size")


@pytest.fixture(scope="module")
def real_size_run(real_size_root) -> dict:
    """One run of the cheapest family, without --keep (data, tokenizers and models made in --work)."""
    return family_run(real_size_root / "out", real_size_root / "work")


@pytest.mark.slow
def test_real_size_runs_the_cheapest_family_and_removes_its_models(real_size_run):
    """--families conformer_ctc_small --out --work: the published architecture (13.2M within 2 %) with a BPE
    128 base is built, fine-tuned to German BPE 64 for 2 steps, exported and restored by stock NeMo; every
    stage's figures are in results.json and RESULTS.md; without --keep only the log is left of the family."""
    (row,) = real_size_run["results"]["rows"]
    assert "error" not in row, row
    assert row["family"] == FAMILY and row["route"] == "bpe->bpe" and row["base_vocabulary"] == "bpe 128"
    assert row["base_class"] == "EncDecCTCModelBPE"
    assert abs(row["parameters"] - 13.2e6) / 13.2e6 < 0.02, row["parameters"]
    # the 129-output head (128 tokens and blank) became a 65-output one: 64 rows of weights and bias fewer
    dropped = row["parameters"] - row["finetuned_parameters"]
    assert dropped > 0 and dropped % (128 - GERMAN_BPE) == 0, dropped
    # fp32 weights: a .nemo is 4 bytes a parameter and a little config and tokenizer
    assert 0 <= row["base_nemo_mb"] - 4 * row["parameters"] / 1e6 < 2, row
    assert 0 <= row["exported_nemo_mb"] - 4 * row["finetuned_parameters"] / 1e6 < 2, row
    assert row["steps"] == 2 and row["seconds_per_step"] > 0
    for stage in ("build", "finetune", "export", "restore_transcribe"):
        assert row[stage]["rc"] == 0 and row[stage]["wall_s"] > 0, (stage, row[stage])
        assert 0.1 < row[stage]["peak_rss_gib"] < 8, (stage, row[stage])
    stock = row["stock_nemo"]
    assert stock["class"] == "EncDecCTCModelBPE" and stock["vocabulary_size"] == GERMAN_BPE
    assert isinstance(stock["text"], str) and stock["restore_s"] >= 0 and stock["transcribe_s"] >= 0
    assert json.dumps(row) in real_size_run["result"].stdout, "each row is printed as it is done"

    results = real_size_run["results"]
    assert results["commands"] == [real_size_run["command"]]
    assert results["versions"]["nemo_toolkit"] == "3.0.0" and results["versions"]["torch"] != "absent"
    assert results["data"].startswith("8 synthetic German train clips of ")
    markdown = real_size_run["markdown"]
    assert f"| {FAMILY} | bpe->bpe | {row['parameters'] / 1e6:.1f}M (13.2M) | bpe 128 | {row['base_nemo_mb']} |" in (
        markdown
    )
    assert "Every route ran to a stock-NeMo transcript." in markdown
    assert real_size_run["left"] == ["log.txt"], "without --keep the .nemo files and the run folder are removed"


@pytest.mark.slow
def test_real_size_keep_keeps_the_models_and_replaces_the_family_row(real_size_run, real_size_root):
    """A second run with --keep into the same --out and --work: the German data is reused, not made again;
    the base and exported .nemo files and the run folder stay, of the sizes results.json gives; the family's
    row is replaced (not added to) and both commands are recorded."""
    work = real_size_root / "work"
    summary = work / "prepared_de" / "summary.json"
    made = summary.stat().st_mtime_ns
    kept = family_run(real_size_root / "out", work, "--keep")
    assert summary.stat().st_mtime_ns == made, "the prepared German data is reused"
    (row,) = kept["results"]["rows"]
    assert "error" not in row, row
    assert kept["results"]["commands"] == [real_size_run["command"], kept["command"]]
    assert kept["left"] == sorted(["log.txt", "exp", f"{FAMILY}_random.nemo", f"{FAMILY}_de.nemo"])
    folder = work / "families" / FAMILY
    assert round((folder / f"{FAMILY}_random.nemo").stat().st_size / 1e6, 1) == row["base_nemo_mb"]
    assert round((folder / f"{FAMILY}_de.nemo").stat().st_size / 1e6, 1) == row["exported_nemo_mb"]
    (throughput,) = (folder / "exp").glob("*/v1/throughput.json")
    assert json.loads(throughput.read_text())["steps"] == 2


@pytest.mark.slow
def test_real_size_activations_reproduces_the_documented_figures(tmp_path):
    """--activations --out --work: the bytes autograd saves per layer of Parakeet-CTC 1.1B's encoder (one
    and two XXL layers, 10 s and 20 s utterances; about a minute and 2 GB) go to OUT/activations.json and
    stdout, equal the figures docs/results/real_size/activations.json holds (the README's one-GPU memory
    arithmetic), and the 600 s batch figures follow from the per-layer ones; no route is run."""
    out, work = tmp_path / "out", tmp_path / "work"
    result = run_tool("real_size.py", "--activations", "--out", str(out), "--work", str(work), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(path.name for path in out.iterdir()) == ["activations.json"]
    assert not any(work.iterdir()), "no data is made for --activations"
    figures = json.loads((out / "activations.json").read_text())
    assert json.loads(result.stdout[result.stdout.index("{") :]) == figures
    assert figures["command"] == f"python tools/real_size.py --activations --out {out} --work {work}"
    documented = json.loads((REPO / "docs" / "results" / "real_size" / "activations.json").read_text())
    measured = [key for key in documented if key.startswith(("per_layer", "subsampling", "batch_600s"))]
    assert len(measured) == 8
    assert {key: figures[key] for key in measured} == {key: documented[key] for key in measured}
    assert figures["per_layer_mib_20s"] > 2 * figures["per_layer_mib_10s"] > 0, "twice the frames, more than twice"
    assert figures["per_layer_bytes_per_frame"] > 0 and figures["per_layer_bytes_per_frame_squared"] >= 0
    for seconds in (10, 20):
        clips = 600 / seconds
        mib = (42 * figures[f"per_layer_mib_{seconds}s"] + figures[f"subsampling_mib_{seconds}s"]) * clips
        assert figures[f"batch_600s_of_{seconds}s_clips_gib"] == pytest.approx(mib / 1024, abs=0.2)


def test_real_size_unknown_family_is_one_error_line(tmp_path):
    """--families with a name it does not know: one error line naming it and listing the known families,
    exit 2 (argparse's error() printed its usage too), and nothing made in --out or --work."""
    out, work = tmp_path / "out", tmp_path / "work"
    result = run_tool("real_size.py", "--families", f"{FAMILY},conformer_tiny", "--out", str(out), "--work", str(work))
    assert_user_error(result, "unknown families conformer_tiny", "choose from quartznet15x5,")
    assert not out.exists() and not work.exists()
