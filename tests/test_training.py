"""Fine-tuning: configs, base restore (offline hub cache), vocabulary swaps, freezing, guards, runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from asr_transfer import cli
from asr_transfer.analysis.report import read_points
from asr_transfer.fileio import read_manifest, write_manifest
from asr_transfer.layout import best_nemo
from asr_transfer.tokenizers.train import train_tokenizer
from asr_transfer.training.config import ConfigError, check_library_keys, load_config
from asr_transfer.training.data import check_label_lengths, ctc_frames_needed
from asr_transfer.training.finetune import finetune, prepare_model, scratch_model_config
from asr_transfer.training.freezing import encoder_blocks, freeze_lower_blocks, reinit_top_blocks
from asr_transfer.training.grafts import guard_training_step
from asr_transfer.training.models import build_model, swap_vocabulary
from tests.conftest import CONF, ENGLISH, char_vocab


def run_cfg(config: str, tmp_path, german, *overrides):
    return load_config(
        str(CONF / config),
        [
            f"vocab.dir={german['char']}",
            f"data.train_manifest={german['train']}",
            f"data.dev_manifest={german['dev']}",
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            "trainer.enable_progress_bar=false",
            "data.batch_size=4",
            *overrides,
        ],
    )


def test_overrides_follow_hydra_rules(tmp_path):
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"),
        [
            "trainer.max_steps=7",
            "+trainer.accumulate_grad_batches=2",
            "+model.optim.amsgrad=true",
            "~model.optim.sched",
        ],
    )
    assert cfg.trainer.max_steps == 7 and cfg.trainer.accumulate_grad_batches == 2 and cfg.model.optim.amsgrad
    assert "sched" not in cfg.model.optim
    with pytest.raises(ConfigError, match=r"write \+trainer.accumulate_grad_batches=2"):
        load_config(str(CONF / "tiny_quartznet_char.yaml"), ["trainer.accumulate_grad_batches=2"])
    with pytest.raises(ConfigError, match="nearest valid key: trainer.max_steps"):
        check_library_keys(load_config(str(CONF / "tiny_quartznet_char.yaml"), ["+trainer.max_stepz=2"]))
    with pytest.raises(ConfigError, match="could not be converted to Integer"):
        load_config(str(CONF / "tiny_quartznet_char.yaml"), ["data.batch_size=many"])


def test_precision_auto_picks_by_accelerator_and_the_gpus_bf16():
    """trainer.precision=auto: each branch of auto_precision, given the device facts resolve_trainer reads from
    torch.cuda; and, on this machine, resolve_trainer itself. Regression: auto was decided before the
    accelerator, so trainer.accelerator=cpu on a GPU machine got bf16-mixed and was then refused as needing a GPU."""
    from asr_transfer.training.config import auto_precision, resolve_trainer

    assert auto_precision("gpu", cuda_available=True, bf16_supported=True) == "bf16-mixed"  # Ampere and later
    assert auto_precision("gpu", cuda_available=True, bf16_supported=False) == "16-mixed"  # V100, T4
    assert auto_precision("cpu", cuda_available=True, bf16_supported=True) == "32"  # a GPU machine, told cpu
    assert auto_precision("cpu", cuda_available=False, bf16_supported=False) == "32"

    def resolved(*overrides):
        cfg = load_config(str(CONF / "tiny_quartznet_char.yaml"), ["vocab.dir=v", *overrides])
        return resolve_trainer(cfg).trainer

    trainer = resolved("trainer.accelerator=cpu")
    assert (trainer.accelerator, str(trainer.precision)) == ("cpu", "32")
    trainer = resolved()  # accelerator auto, then precision auto, from this machine's torch.cuda
    cuda = torch.cuda.is_available()
    wanted = auto_precision("gpu" if cuda else "cpu", cuda, cuda and torch.cuda.is_bf16_supported())
    assert (trainer.accelerator, str(trainer.precision)) == ("gpu" if cuda else "cpu", wanted)
    with pytest.raises(ConfigError, match="trainer.precision=bf16-mixed needs a GPU"):
        resolved("trainer.accelerator=cpu", "trainer.precision=bf16-mixed")


def test_a_run_shorter_than_its_validation_interval_validates_at_its_last_step():
    """finetune --steps 4 with a config that validates every 50 steps: one validation at step 4 (without it
    the run had no dev curve and NeMo exported its last weights as the best model); longer runs keep theirs."""
    from asr_transfer.training.config import resolve_trainer

    def interval(*overrides):
        overrides = ["vocab.dir=v", "trainer.accelerator=cpu", *overrides]
        cfg = load_config(str(CONF / "tiny_quartznet_char.yaml"), overrides)
        return resolve_trainer(cfg).trainer.val_check_interval

    assert interval("trainer.max_steps=4", "trainer.val_check_interval=50") == 4
    assert interval("trainer.max_steps=400", "trainer.val_check_interval=50") == 50
    assert interval("trainer.max_steps=4", "trainer.val_check_interval=0.5") == 0.5  # a fraction of an epoch


@pytest.mark.parametrize(
    "yaml_text, named",
    [
        (
            "data:\n  batch_sizee: 8\n",
            "data.batch_sizee is not a key of the config; nearest valid key: data.batch_size",
        ),
        ("freeze:\n  encoder_block: 2\n", "nearest valid key: freeze.encoder_blocks"),
        (
            "exp_manager:\n  checkpoint_callback_params:\n    monitr: val_cer\n",
            "nearest valid key: exp_manager.checkpoint_callback_params.monitor",
        ),
        ("trainer:\n  max_step: 5\n", "nearest valid key: trainer.max_steps"),
        ("vocabulary:\n  kind: bpe\n", "nearest valid key: vocab"),
    ],
)
def test_a_misspelt_key_in_a_config_file_is_one_error_line(tmp_path, capsys, yaml_text, named):
    config = tmp_path / "mine.yaml"
    config.write_text("inherit: " + str(CONF / "tiny_quartznet_char.yaml") + "\n" + yaml_text, encoding="utf-8")
    # trainer and exp_manager keys are the libraries' own: checked when the run starts (before anything is
    # built or written), so that --print needs neither library
    code = cli.main(["finetune", "--config", str(config), f"exp_manager.exp_dir={tmp_path / 'exp'}"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    assert named in err[0]
    assert not (tmp_path / "exp").exists()


def test_keep_shared_tokens_carries_rows_and_blank(tmp_path, german, tiny_base):
    from nemo.collections.asr.models import ASRModel

    base = ASRModel.restore_from(tiny_base, map_location="cpu")
    old_weight = base.decoder.decoder_layers[0].weight.detach().clone()
    model, shared = swap_vocabulary(
        base, OmegaConf.create({"kind": "char", "dir": str(german["char"]), "keep_shared_tokens": True})
    )
    new_vocab = list(model.decoder.vocabulary)
    weight = model.decoder.decoder_layers[0].weight
    assert "ß" in new_vocab and shared == 28  # space, apostrophe and a-z
    assert torch.equal(weight[new_vocab.index("a")], old_weight[ENGLISH.index("a")])
    assert torch.equal(weight[-1], old_weight[-1])
    assert not torch.equal(weight[new_vocab.index("ß")], old_weight[ENGLISH.index("a")])


def test_char_base_to_bpe_target_keeps_encoder(tmp_path, german, tiny_base):
    from nemo.collections.asr.models import ASRModel, EncDecCTCModelBPE

    base = ASRModel.restore_from(tiny_base, map_location="cpu")
    encoder_state = {k: v.clone() for k, v in base.encoder.state_dict().items()}
    model, shared = swap_vocabulary(base, OmegaConf.create({"kind": "bpe", "dir": str(german["bpe"])}))
    assert isinstance(model, EncDecCTCModelBPE) and model.tokenizer.vocab_size == 48
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_state[key]), key
    assert shared > 0  # single-letter pieces such as "a" exist in both
    # Regression: the rebuilt model kept the char base's config target and restored as a char model whose
    # labels were the pieces, without its tokenizer.
    saved = tmp_path / "char_to_bpe.nemo"
    model.save_to(str(saved))
    restored = ASRModel.restore_from(str(saved), map_location="cpu")
    assert type(restored) is EncDecCTCModelBPE and restored.tokenizer.vocab_size == 48
    assert "labels" not in restored.cfg


def test_freeze_and_reinit(tiny_base):
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(tiny_base, map_location="cpu")
    blocks = encoder_blocks(model)
    top_before = [p.detach().clone() for p in blocks[-1].parameters()]
    assert reinit_top_blocks(model, 1) > 0
    assert any(not torch.equal(a, b) for a, b in zip(top_before, blocks[-1].parameters(), strict=True))
    frozen = freeze_lower_blocks(model, 2, keep_norm_trainable=True)
    assert len(frozen) == 2
    conv = [p for m in blocks[0].modules() if isinstance(m, torch.nn.Conv1d) for p in m.parameters()]
    norms = [m for m in blocks[0].modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert conv and all(not p.requires_grad for p in conv)
    assert norms and all(p.requires_grad for m in norms for p in m.parameters())
    assert all(p.requires_grad for p in blocks[2].parameters())
    with pytest.raises(ConfigError, match="only 6 blocks"):
        freeze_lower_blocks(model, 99)


def test_length_check_drops_labels_longer_than_frames(tmp_path, tiny_base):
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(tiny_base, map_location="cpu")
    assert ctc_frames_needed([1, 1, 2]) == 4
    manifest = tmp_path / "m.json"
    write_manifest(
        manifest,
        [
            {"audio_filepath": "a.wav", "duration": 2.0, "text": "short"},
            {"audio_filepath": "b.wav", "duration": 0.5, "text": "a much too long transcript for half a second"},
        ],
    )
    result = check_label_lengths(model, str(manifest), str(tmp_path), "train")
    assert (result.kept, result.dropped) == (1, 1)
    assert "much too long" in Path(result.report).read_text()
    assert [e["text"] for e in read_manifest(result.manifest)] == ["short"]


def test_nonfinite_loss_batch_is_skipped(german, tiny_base):
    from nemo.collections.asr.data.audio_to_text import AudioToCharDataset
    from nemo.collections.asr.models import ASRModel

    model, _ = swap_vocabulary(
        ASRModel.restore_from(tiny_base, map_location="cpu"),
        OmegaConf.create({"kind": "char", "dir": str(german["char"])}),
    )
    dataset = AudioToCharDataset(german["dev"], labels=list(model.decoder.vocabulary), sample_rate=16000, parser="base")
    batch = dataset._collate_fn([dataset[0], dataset[1]])
    import lightning.pytorch as pl

    model.set_trainer(pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False, accelerator="cpu"))
    model._optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.log = lambda *args, **kwargs: None  # logging needs a running fit loop
    guard_training_step(model)
    assert model.training_step(batch, 0) is not None
    with torch.no_grad():
        model.decoder.decoder_layers[0].weight.fill_(float("nan"))
    assert model.training_step(batch, 0) is None
    assert model._skipped_nonfinite == 1


# The full-size architectures (QuartzNet 15x5, Conformer-CTC small, Citrinet-512) take the whole route in
# tests/test_real_size.py.
@pytest.mark.parametrize("config", ["tiny_quartznet_char.yaml"])
def test_every_config_trains_one_step_and_round_trips(config, tmp_path, german):
    """Base of the config's architecture with random weights -> vocabulary swap -> one CPU step -> .nemo."""
    from nemo.collections.asr.models import ASRModel

    cfg = run_cfg(
        config, tmp_path, german, "trainer.max_steps=1", "trainer.val_check_interval=1", "data.check_lengths=false"
    )
    bpe = cfg.vocab.kind == "bpe"
    if bpe:
        english_text = tmp_path / "en.json"
        write_manifest(
            english_text,
            [
                {
                    "audio_filepath": "x.wav",
                    "duration": 1.0,
                    "text": "the quick brown fox jumps over the lazy dog again and again",
                }
            ]
            * 20,
        )
        base_vocab = OmegaConf.create(
            {
                "kind": "bpe",
                "dir": str(train_tokenizer([str(english_text)], "en", "bpe", tmp_path / "tok", vocab_size=32)),
            }
        )
        cfg.vocab.dir = str(german["bpe"])
    else:
        labels = ENGLISH if "zh" not in config else [" ", "的", "我", "你", "是", "去"]
        base_vocab = char_vocab(tmp_path, labels)
    base = build_model(scratch_model_config(cfg), base_vocab)
    base.save_to(str(tmp_path / "base.nemo"))
    cfg.init.pretrained = None
    cfg.init.nemo = str(tmp_path / "base.nemo")
    log_dir = finetune(cfg)
    restored = ASRModel.restore_from(str(best_nemo(log_dir)), map_location="cpu")
    if bpe:
        assert restored.tokenizer.vocab_size == 48
    else:
        assert "ß" in restored.decoder.vocabulary
    report = json.loads((log_dir / "model_report.json").read_text())
    assert report["shared_tokens_kept"] >= 1 and report["parameters"] > 100_000


def test_finetune_run_resumes_and_records(tmp_path, german, tiny_base):
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={tiny_base}",
        "trainer.max_steps=4",
        "trainer.val_check_interval=2",
        "freeze.encoder_blocks=2",
        "freeze.until_step=3",
    )
    log_dir = finetune(cfg)
    assert (log_dir / "finetune_config.yaml").exists() and (log_dir / "command.txt").exists()
    rows = (log_dir / "curves" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    assert all(float(point["dev_cer"]) >= 0 for point in read_points(log_dir)), "dev CER at every validation"
    report = json.loads((log_dir / "model_report.json").read_text())
    assert 0 < report["trainable_fraction"] < 1
    assert json.loads((log_dir / "throughput.json").read_text())["utterances_per_second"] > 0
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={tiny_base}",
        "trainer.max_steps=6",
        "trainer.val_check_interval=2",
    )
    assert finetune(cfg) == log_dir
    steps = [r.split(",")[0] for r in (log_dir / "curves" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["2", "4", "6"], "the second run must resume at step 4, not start again"


def test_scratch_model_and_missing_base(tmp_path, german):
    cfg = run_cfg("tiny_quartznet_char.yaml", tmp_path, german, "init.scratch=true")
    model, report = prepare_model(cfg)
    assert report["init"] == "scratch" and "ß" in model.decoder.vocabulary
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_transfer.cli",
            "finetune",
            "--config",
            str(CONF / "tiny_quartznet_char.yaml"),
            "init.nemo=/nowhere/base.nemo",
            f"vocab.dir={german['char']}",
            f"data.train_manifest={german['train']}",
            f"data.dev_manifest={german['dev']}",
            f"exp_manager.exp_dir={tmp_path / 'exp2'}",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "init.nemo=/nowhere/base.nemo does not exist" in result.stderr


@pytest.mark.slow
def test_ddp_two_cpu_processes_with_gloo(tmp_path, german):
    """Two gloo ranks from manifests; the dev CER they log is the whole dev set's (edit operations and
    characters summed over the ranks), not the mean of the two ranks' CERs."""
    import jiwer

    from asr_transfer.inference.evaluate import HYPOTHESES_FILE, evaluate

    shipped_base = CONF.parent / "en_base" / "model" / "en_tiny_quartznet_char.nemo"  # real hypotheses
    # Lightning's sampler gives rank r the dev utterances r, r + 2, ...: rank 0 the 4 longest, rank 1 the 4
    # shortest with only their first word transcribed (CER well above 1 on few characters), so a mean of
    # the ranks' CERs is far from the dev set's.
    rows = sorted(read_manifest(german["dev"]), key=lambda row: len(row["text"]))
    short = [dict(row, text=row["text"].split()[0]) for row in rows[:4]]
    dev = tmp_path / "dev.json"
    write_manifest(dev, [row for pair in zip(rows[4:], short, strict=True) for row in pair])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "asr_transfer.cli",
            "finetune",
            "--config",
            str(CONF / "tiny_quartznet_char.yaml"),
            f"init.nemo={shipped_base}",
            f"vocab.dir={german['char']}",
            f"data.train_manifest={german['train']}",
            f"data.dev_manifest={dev}",
            f"exp_manager.exp_dir={tmp_path / 'exp'}",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            "trainer.max_steps=2",
            "trainer.val_check_interval=2",
            "data.batch_size=4",
            "trainer.enable_progress_bar=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The worker rank used to race rank 0 to checkpoints/run.nemo and print an error line on a good run.
    assert "error" not in result.stderr.lower() and "warning" not in result.stderr.lower(), result.stderr
    assert result.stdout.count("run folder:") == 1
    run_dir = Path(result.stdout.split("run folder: ")[1].strip())
    assert "distributed_backend=gloo" in (run_dir / "nemo_log_globalrank-0_localrank-0.txt").read_text()
    assert (run_dir / "nemo_log_globalrank-1_localrank-1.txt").is_file()
    assert (run_dir / "checkpoints" / "run.nemo").is_file()
    # One validation (step 2), whose weights run.nemo holds
    logged = read_points(run_dir)[-1]["dev_cer"]
    offline = evaluate(str(run_dir / "checkpoints" / "run.nemo"), str(dev), out_dir=str(tmp_path / "eval"))
    rows = [json.loads(line) for line in (tmp_path / "eval" / HYPOTHESES_FILE).read_text().splitlines()]
    assert len(rows) == 8 and all(row["hypothesis"] and row["cer"] > 0.05 for row in rows), "real hypotheses"
    by_rank = [rows[rank::2] for rank in (0, 1)]
    mean_of_ranks = sum(jiwer.cer([r["reference"] for r in rs], [r["hypothesis"] for r in rs]) for rs in by_rank) / 2
    print(f"logged {logged:.4f}, offline {offline['cer']:.4f}, mean of the ranks' CERs {mean_of_ranks:.4f}")
    assert logged == pytest.approx(offline["cer"], abs=0.002)
    assert abs(mean_of_ranks - offline["cer"]) > 0.05, "the two ways of averaging agree here: nothing is tested"


def test_dev_cer_callback_matches_offline_evaluation(tmp_path, german):
    """val_cer logged during validation equals jiwer's CER of the same model transcribing dev offline."""
    import lightning.pytorch as pl

    from asr_transfer.inference.evaluate import evaluate
    from asr_transfer.training.callbacks import DevCER
    from asr_transfer.training.data import dataset_config

    shipped_base = CONF.parent / "en_base" / "model" / "en_tiny_quartznet_char.nemo"
    cfg = run_cfg("tiny_quartznet_char.yaml", tmp_path, german, f"init.nemo={shipped_base}")
    model, _ = prepare_model(cfg)  # English base, German characters, shared letters kept: real hypotheses
    model.setup_validation_data(dataset_config(model, german["dev"], cfg.data, train=False))
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        callbacks=[DevCER()],
    )  # fmt: skip
    trainer.validate(model)
    logged = float(trainer.callback_metrics["val_cer"])
    offline = evaluate("in-memory", german["dev"], model=model)
    assert 0.05 < offline["cer"] < 1.0, "the hypotheses must be neither empty nor perfect for this to test anything"
    print(f"val_cer {logged:.4f}, offline CER {offline['cer']:.4f}")
    assert logged == pytest.approx(offline["cer"], abs=0.002)


def nemo_1x_style_copy(source: str, target: Path) -> Path:
    """``source`` repacked with the model_config.yaml keys of the NeMo 1.x checkpoints the public bases
    are (stt_en_quartznet15x5 1.0.0rc1): stft_conv/stft_exact_pad, rect_* SpecAugment, labels both at
    the top level and in the decoder, and 1.x dataset sections."""
    import tarfile

    import yaml

    unpacked = target.parent / "unpacked"
    with tarfile.open(source) as archive:
        archive.extractall(unpacked, filter="data")
    config_path = unpacked / "model_config.yaml"
    config = yaml.safe_load(config_path.read_text())
    labels = config["decoder"]["vocabulary"]
    config["labels"] = labels
    config["preprocessor"].update({"stft_conv": False, "stft_exact_pad": False, "dither": 1e-05, "pad_to": 16})
    config["spec_augment"] = {
        "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
        "rect_masks": 5,
        "rect_time": 120,
        "rect_freq": 50,
    }
    old_dataset = {
        "manifest_filepath": "/data/librispeech/train_clean_100.json",
        "sample_rate": 16000,
        "labels": labels,
        "batch_size": 32,
        "trim_silence": True,
        "max_duration": 16.7,
        "shuffle": True,
        "is_tarred": False,
        "tarred_audio_filepaths": None,
        "normalize_transcripts": True,
    }
    config["train_ds"] = old_dataset
    config["validation_ds"] = {**old_dataset, "shuffle": False, "manifest_filepath": "/data/dev_clean.json"}
    config["target"] = "nemo.collections.asr.models.ctc_models.EncDecCTCModel"  # 1.x's module path
    config_path.write_text(yaml.safe_dump(config))
    with tarfile.open(target, "w:") as archive:
        for member in sorted(unpacked.iterdir()):
            archive.add(member, arcname=f"./{member.name}")
    return target


def test_nemo_1x_checkpoint_keys_restore_swap_and_train(tmp_path, german, tiny_base):
    old_base = nemo_1x_style_copy(tiny_base, tmp_path / "old" / "stt_en_old.nemo")
    cfg = run_cfg(
        "tiny_quartznet_char.yaml",
        tmp_path,
        german,
        f"init.nemo={old_base}",
        "trainer.max_steps=1",
        "trainer.val_check_interval=1",
    )
    log_dir = finetune(cfg)
    report = json.loads((log_dir / "model_report.json").read_text())
    assert report["shared_tokens_kept"] > 20
    from nemo.collections.asr.models import ASRModel

    tuned = ASRModel.restore_from(str(log_dir / "checkpoints" / "run.nemo"), map_location="cpu")
    assert list(tuned.decoder.vocabulary) == list(tuned.cfg.labels) and "ä" in tuned.decoder.vocabulary


def test_checkpoints_follow_the_languages_primary_metric(tmp_path):
    from asr_transfer.training.config import resolve_monitor
    from asr_transfer.training.finetune import printable

    def monitor(*overrides):
        cfg = load_config(str(CONF / "tiny_quartznet_char.yaml"), ["vocab.dir=v", *overrides])
        return resolve_monitor(cfg).exp_manager.checkpoint_callback_params.monitor

    # Regression: Cantonese monitored val_wer, which stays at 1.0 without word spaces, so the step-25
    # checkpoint was kept as the best.
    assert monitor("lang=yue") == monitor("lang=zh-HK") == monitor("lang=zh") == "val_cer"
    assert monitor("lang=de") == monitor() == "val_wer"
    assert monitor("lang=yue", "exp_manager.checkpoint_callback_params.monitor=val_loss") == "val_loss"
    cfg = load_config(
        str(CONF / "tiny_quartznet_char.yaml"), ["lang=de", "init.nemo=bases/en_x.nemo", "vocab.dir=tok/de/spe_bpe_v64"]
    )
    assert printable(cfg, "model-name") == "de_from_en_x_spe_bpe_v64"
    assert printable(cfg, "vocab.kind") == "char"
    with pytest.raises(ConfigError, match="--print vocab: not run-dir"):
        printable(cfg, "vocab")
