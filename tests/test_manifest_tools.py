"""manifest stats, validate, merge and subset."""

from __future__ import annotations

from asr_transfer.fileio import write_manifest
from asr_transfer.manifests.tools import main, manifest_stats, merge_manifests, subset_manifest, validate_manifest
from tests.conftest import read_lines


def test_stats(prepared_de):
    out, summary = prepared_de
    stats = manifest_stats(str(out / "train.json"))
    assert stats["utterances"] == summary["splits"]["train"]["kept"]
    assert abs(stats["hours"] - summary["splits"]["train"]["hours"]) < 1e-3
    assert stats["speakers"] >= 2 and stats["characters"][" "] > 0


def test_validate_finds_each_problem(tmp_path, prepared_de, capsys):
    out, _ = prepared_de
    assert validate_manifest(str(out / "train.json"), "de") == []
    good = read_lines(out / "train.json")[0]
    bad = tmp_path / "bad.json"
    bad.write_text(
        "\n".join(
            [
                '{"audio_filepath": "nowhere.wav", "duration": 1.0, "text": "hallo"}',
                '{"duration": 1.0, "text": "x"}',
                "not json",
                f'{{"audio_filepath": "{good["audio_filepath"]}", "duration": -1, "text": "Привет"}}',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    problems = validate_manifest(str(bad), "de")
    assert any("audio file missing" in p for p in problems)
    assert any("missing field audio_filepath" in p for p in problems)
    assert any("not a JSON manifest line" in p for p in problems)
    assert any("not a positive number" in p for p in problems)
    assert any("outside the de alphabet" in p for p in problems)
    assert main(["validate", str(bad)]) == 1
    assert main(["validate", str(out / "dev.json"), "--lang", "de"]) == 0


def test_merge_weights(tmp_path):
    old = [{"audio_filepath": f"o{i}.wav", "duration": 1.0, "text": "old"} for i in range(10)]
    new = [{"audio_filepath": f"n{i}.wav", "duration": 1.0, "text": "new"} for i in range(4)]
    write_manifest(tmp_path / "old.json", old)
    write_manifest(tmp_path / "new.json", new)
    count = merge_manifests(
        [str(tmp_path / "new.json"), str(tmp_path / "old.json")], [2, 0.3], str(tmp_path / "m.json")
    )
    merged = read_lines(tmp_path / "m.json")
    assert count == len(merged) == 8 + 3
    assert sum(e["text"] == "new" for e in merged) == 8


def test_subsets_nest_and_meet_the_budget(tmp_path):
    entries = [{"audio_filepath": f"{i}.wav", "duration": 2.0 + i % 3, "text": "t"} for i in range(300)]
    write_manifest(tmp_path / "all.json", entries)
    small = subset_manifest(str(tmp_path / "all.json"), 0.05, str(tmp_path / "s.json"), seed=7)
    large = subset_manifest(str(tmp_path / "all.json"), 0.1, str(tmp_path / "l.json"), seed=7)
    assert 0.05 <= small["hours"] < 0.05 + 5 / 3600
    assert 0.1 <= large["hours"] < 0.1 + 5 / 3600
    small_paths = {e["audio_filepath"] for e in read_lines(tmp_path / "s.json")}
    large_paths = {e["audio_filepath"] for e in read_lines(tmp_path / "l.json")}
    assert small_paths < large_paths


def test_merge_and_subset_keep_relative_paths_naming_the_same_files(tmp_path):
    """A relative audio path is its manifest folder's; written elsewhere it is rewritten to stay so."""
    import os

    from asr_transfer.manifests.paths import audio_path

    (tmp_path / "a" / "clips").mkdir(parents=True)
    (tmp_path / "a" / "clips" / "x.wav").write_bytes(b"")
    write_manifest(tmp_path / "a" / "train.json", [{"audio_filepath": "clips/x.wav", "duration": 1.0, "text": "x"}])
    write_manifest(tmp_path / "b.json", [{"audio_filepath": "/abs/y.wav", "duration": 1.0, "text": "y"}])
    merged, subset = tmp_path / "out" / "deep" / "merged.json", tmp_path / "subset.json"
    merge_manifests([str(tmp_path / "a" / "train.json"), str(tmp_path / "b.json")], [1, 1], str(merged))
    subset_manifest(str(tmp_path / "a" / "train.json"), 1.0, str(subset))
    beside = tmp_path / "a" / "again.json"
    subset_manifest(str(tmp_path / "a" / "train.json"), 1.0, str(beside))
    clip = str(tmp_path / "a" / "clips" / "x.wav")
    for written in (merged, subset):
        paths = {audio_path(entry["audio_filepath"], written) for entry in read_lines(written)}
        assert clip in paths and all(os.path.isabs(path) for path in paths)
    assert {entry["audio_filepath"] for entry in read_lines(merged)} == {"../../a/clips/x.wav", "/abs/y.wav"}
    assert read_lines(beside)[0]["audio_filepath"] == "clips/x.wav"  # same folder: as written
