"""``asr-transfer finetune --config CONF.yaml [key=value | +key=value ...]``: transfer fine-tuning.

In: a config (see ``recipes/conf/``): ``init`` (base model name, ``.nemo``, or scratch with an
``arch`` file), ``vocab`` (target vocabulary), ``freeze``, ``data`` (NeMo manifests), ``model``
(SpecAugment and optimizer; the architecture is the base's), ``trainer`` (Lightning) and
``exp_manager`` (NeMo). Inputs are checked before anything is written. Out: a run folder
``exp_dir/name/version`` (``asr_transfer.layout.run_dir``) with
TensorBoard logs, checkpoints, the best model as ``.nemo``, ``curves/metrics.csv``, ``throughput.json``,
the resolved config and the command line. Rerunning a killed run resumes it from its last checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from asr_transfer.errors import UserError
from asr_transfer.fileio import atomic_open
from asr_transfer.languages import MODEL_LANGUAGE_KEY
from asr_transfer.layout import VOCAB_KINDS, checkpoints_dir, run_dir_of
from asr_transfer.training.config import ConfigError, check_library_keys, load_arch, resolve_monitor, resolve_trainer


def make_trainer(cfg: DictConfig):
    import lightning.pytorch as pl

    from asr_transfer.logs import is_verbose
    from asr_transfer.training.callbacks import RunFolderLog, StepProgressBar

    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    trainer_cfg.update({"logger": False, "enable_checkpointing": False})
    # The run folder gets the full log and the model summary; the terminal one bar and a line a validation.
    trainer_cfg["callbacks"] = [*trainer_cfg.get("callbacks", []), RunFolderLog()]
    if not is_verbose():
        trainer_cfg.setdefault("enable_model_summary", False)
    if trainer_cfg.get("enable_progress_bar", True):
        trainer_cfg["callbacks"].append(StepProgressBar())
    return pl.Trainer(**trainer_cfg)


def scratch_model_config(cfg: DictConfig) -> DictConfig:
    """The architecture of ``init.arch`` with the fine-tuning config's SpecAugment and preprocessor keys."""
    model_cfg = load_arch(cfg.init.get("arch"))
    if cfg.model.get("spec_augment"):
        with open_dict(model_cfg):
            model_cfg.spec_augment = cfg.model.spec_augment
    if cfg.model.get("preprocessor"):
        from nemo.core.classes.common import Serialization

        with open_dict(model_cfg):
            model_cfg.preprocessor = merged_keys(model_cfg.preprocessor, cfg.model.preprocessor)
        build_preprocessor(Serialization, model_cfg.preprocessor)  # a key it does not take: one error line
    return model_cfg


def merged_keys(section: DictConfig, keys: DictConfig) -> DictConfig:
    """``section`` with ``keys`` changed or added (a model's sections are struct: no key may be added)."""
    return OmegaConf.merge(OmegaConf.create(OmegaConf.to_container(section)), keys)


def build_preprocessor(model, preprocessor_cfg: DictConfig):
    """``model.from_config_dict(preprocessor_cfg)`` (``model``: a model or NeMo's ``Serialization``); a key
    the preprocessor does not take is a ConfigError (NeMo raises a TypeError, which Hydra wraps)."""
    from hydra.errors import InstantiationException

    try:
        return model.from_config_dict(preprocessor_cfg)
    except (TypeError, InstantiationException) as error:
        cause = error.__cause__ or error
        target = preprocessor_cfg.get("_target_", "the preprocessor")
        raise ConfigError(
            f"model.preprocessor: {' '.join(str(cause).split())}; {preprocessor_key_hint(str(cause), target)}"
        ) from None


def preprocessor_key_hint(message: str, target: str) -> str:
    """What to use instead of the keyword a preprocessor class refused (``message``: Python's TypeError):
    the nearest of the class's ``__init__`` arguments, or, when NeMo cannot resolve the class, its name."""
    import re

    from nemo.core.classes.common import _get_allowed_target_class

    from asr_transfer.training.config import init_parameters, nearest

    refused = re.search(r"unexpected keyword argument '(\w+)'", message)
    try:
        arguments = init_parameters(_get_allowed_target_class(str(target)))  # NeMo's own _target_ resolver
    except Exception:  # an unsafe prefix, a moved module or no class: name the one to read
        return f"use the keys of {target}"
    return nearest(refused.group(1) if refused else "", arguments)


def change_preprocessor(model, keys: DictConfig) -> None:
    """Rebuild a restored model's preprocessor with ``keys`` (``model.preprocessor`` of the fine-tuning
    config, e.g. ``exact_pad: true``) changed, in ``model.cfg`` too, so that the saved ``.nemo`` computes
    the same features. The preprocessor holds no trained weights (its window and mel banks are computed
    from its config). Raises ConfigError for a key the preprocessor does not take."""
    merged = merged_keys(model.cfg.preprocessor, keys)
    model.preprocessor = build_preprocessor(model, merged)
    with open_dict(model.cfg):
        model.cfg.preprocessor = merged


def check_inputs(cfg: DictConfig, option_names: dict | None = None) -> None:
    """Every input a run reads, checked before anything is built or written: the base archive (or the
    scratch architecture), the vocabulary folder, and both manifests (fields, lines, audio present)."""
    from asr_transfer.manifests.checks import TRAINING_FIELDS, require_manifest, require_normalized
    from asr_transfer.nemofile import check_buildable, check_nemo_file
    from asr_transfer.training.run import option_name

    shar_path = cfg.data.get("shar_path")
    missing = sorted(key for key in OmegaConf.missing_keys(cfg) if not (shar_path and key == "data.train_manifest"))
    if missing:
        raise ConfigError(f"the config leaves {', '.join(missing)} unset (???); give each as an override, KEY=VALUE")
    if cfg.init.get("scratch"):
        load_arch(cfg.init.get("arch"))
    elif cfg.init.get("nemo"):
        check_buildable(cfg.init.nemo, option_name(option_names, "init.nemo"))
    if cfg.get("distill") and cfg.distill.get("teacher"):
        check_nemo_file(cfg.distill.teacher, "distill.teacher=")
    check_vocabulary(cfg, option_names)
    if cfg.data.get("noise_manifest") or cfg.data.get("rir_manifest"):
        from asr_transfer.training.data import check_augmentation

        check_augmentation(cfg.data)  # noise / RIR manifests and the SNR range, before the base loads
    manifests = [(cfg.data.dev_manifest, "dev manifest")]
    if shar_path:
        from asr_transfer.manifests.shar import rank_fields, shard_fields

        rank_fields(shard_fields(str(shar_path)), 0, planned_world_size(cfg.trainer) or 1)
    else:
        manifests.insert(0, (cfg.data.train_manifest, "training manifest"))
    for path, role in manifests:
        require_manifest(path, TRAINING_FIELDS, audio="exists", role=role)
        if cfg.get("lang"):
            require_normalized(path, cfg.lang, role)


def base_vocabulary_kind(init_cfg: DictConfig, option_names: dict | None = None) -> str | None:
    """``char`` or ``bpe``: what the base's output layer predicts, read without building it (the archive's
    config, or the catalog's entry); None for a scratch model or a base known only by a hub id."""
    from asr_transfer.nemofile import read_config, vocabulary_kind
    from asr_transfer.training.run import option_name

    if init_cfg.get("scratch"):
        return None
    if init_cfg.get("nemo"):
        return vocabulary_kind(read_config(init_cfg.nemo, option_name(option_names, "init.nemo")))
    if init_cfg.get("pretrained"):
        from asr_transfer.bases import BaseModelUnavailable, lookup

        try:
            vocabulary = lookup(str(init_cfg.pretrained)).vocabulary
        except BaseModelUnavailable:
            return None  # restore_pretrained reports the unknown name with every place it looked
        return (vocabulary or {}).get("kind")
    return None


def check_vocabulary(cfg: DictConfig, option_names: dict | None = None) -> None:
    """The config's ``vocab.kind``, what ``vocab.dir`` holds and what the base predicts agree, checked
    before anything is built: a character config reading a SentencePiece folder would otherwise train on
    NeMo's split of ``vocab.txt`` pieces into labels, and exit 0."""
    from asr_transfer.layout import vocab_folder_kind

    kind = cfg.vocab.kind
    if kind not in VOCAB_KINDS:
        raise ConfigError(f"vocab.kind={kind} is unknown; use one of {', '.join(VOCAB_KINDS)}")
    if kind == "keep":
        return
    folder = cfg.vocab.get("dir")
    if not folder:
        raise ConfigError(f"vocab.kind={kind} needs vocab.dir, a folder written by asr-transfer train-tokenizer")
    holds = vocab_folder_kind(folder)
    if holds is None:
        raise ConfigError(
            f"vocab.dir={folder} holds neither vocab.txt nor tokenizer.model; run asr-transfer train-tokenizer first"
        )
    described = {"char": "a character vocabulary (vocab.txt only)", "bpe": "a SentencePiece tokenizer"}
    if holds != kind:
        raise ConfigError(
            f"vocab.kind={kind} but vocab.dir={folder} holds {described[holds]}; set vocab.kind={holds}, or point "
            f"vocab.dir at a train-tokenizer --kind {'char' if kind == 'char' else 'bpe'} folder"
        )
    if kind == "char" and base_vocabulary_kind(cfg.init, option_names) == "bpe":
        raise ConfigError(
            "the base predicts SentencePiece pieces and cannot take a character target (vocab.kind=char); use "
            "vocab.kind=bpe with a train-tokenizer --kind bpe folder, or a character base"
        )


def planned_world_size(trainer_cfg: DictConfig) -> int | None:
    """Processes the trainer config asks for, when it says so without asking the hardware (devices=-1/auto)."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    count = len(devices) if OmegaConf.is_list(devices) or isinstance(devices, list) else devices
    if not isinstance(count, int) or count < 1:
        return None
    return count * int(trainer_cfg.get("num_nodes", 1))


def prepare_model(cfg: DictConfig, trainer=None, option_names: dict | None = None):
    """The model to train: a restored base with the target vocabulary, or a scratch model."""
    from asr_transfer.training.models import build_model, restore_base, swap_vocabulary

    report: dict = {}
    if cfg.init.get("scratch"):
        model = build_model(scratch_model_config(cfg), cfg.vocab, trainer=None)
        report["init"] = "scratch"
    else:
        base = restore_base(cfg.init, option_names=option_names)
        model, shared = swap_vocabulary(base, cfg.vocab)
        report.update({"init": cfg.init.get("nemo") or cfg.init.get("pretrained"), "shared_tokens_kept": shared})
        if cfg.model.get("spec_augment"):
            model.spec_augmentation = model.from_config_dict(cfg.model.spec_augment)
            with open_dict(model.cfg):
                model.cfg.spec_augment = cfg.model.spec_augment
        if cfg.model.get("preprocessor"):
            change_preprocessor(model, cfg.model.preprocessor)
    if trainer is not None:
        model.set_trainer(trainer)
    report["parameters"] = sum(p.numel() for p in model.parameters())
    return model, report


def apply_freezing(model, freeze_cfg: DictConfig):
    from asr_transfer.training.freezing import FreezeSchedule, freeze_lower_blocks, reinit_top_blocks

    reinit_top_blocks(model, int(freeze_cfg.reinit_top))
    keep_norm = bool(freeze_cfg.keep_norm_trainable)
    frozen = freeze_lower_blocks(model, int(freeze_cfg.encoder_blocks), keep_norm)
    until = freeze_cfg.until_step
    return FreezeSchedule(frozen, keep_norm, int(until) if until is not None else None)


def save_run_record(log_dir: Path, cfg: DictConfig, report: dict, argv: list[str] | None) -> None:
    with atomic_open(log_dir / "finetune_config.yaml") as handle:
        handle.write(OmegaConf.to_yaml(cfg, resolve=True))
    with atomic_open(log_dir / "command.txt") as handle:
        handle.write(shlex.join(["asr-transfer", "finetune", *(argv or [])]) + "\n")
    with atomic_open(log_dir / "model_report.json") as handle:
        json.dump(report, handle, indent=2)


@contextlib.contextmanager
def removed_on_failure(run: Path):
    """A run folder this call creates is deleted again if the run fails before its first checkpoint, so
    that a rerun never mistakes it for progress, and so are the folders above it that this call created
    (exp_dir/name) once empty. A folder that existed (a run being resumed) is kept."""
    fresh = not run.exists()
    created_parents = [parent for parent in run.parents if not parent.exists()]  # innermost first
    try:
        yield
    except BaseException:
        if fresh and not any(checkpoints_dir(run).glob("*.ckpt")):
            shutil.rmtree(run, ignore_errors=True)
            for parent in created_parents:
                try:
                    parent.rmdir()  # only an empty one: another run's folder stays
                except OSError:
                    break
        raise


def finetune(
    cfg: DictConfig, argv: list[str] | None = None, callbacks: tuple = (), option_names: dict | None = None
) -> Path:
    """Run a fine-tuning job (with extra Lightning ``callbacks``, if any); returns the run folder."""
    check_library_keys(cfg)
    cfg = resolve_monitor(resolve_trainer(cfg))
    check_inputs(cfg, option_names)
    import torch

    torch.manual_seed(int(cfg.seed))
    trainer = make_trainer(cfg)
    with removed_on_failure(run_dir_of(cfg.exp_manager)):
        return train(cfg, trainer, argv, callbacks, option_names)


def train(
    cfg: DictConfig, trainer, argv: list[str] | None, callbacks: tuple = (), option_names: dict | None = None
) -> Path:
    from nemo.utils.exp_manager import exp_manager

    from asr_transfer.manifests.audio import model_sample_rate
    from asr_transfer.training.callbacks import DevCER, MetricsCSV, Throughput
    from asr_transfer.training.data import check_label_lengths, dataset_config
    from asr_transfer.training.freezing import trainable_fraction

    log_dir = Path(exp_manager(trainer, cfg.exp_manager))
    model, report = prepare_model(cfg, trainer, option_names)
    freeze_schedule = apply_freezing(model, cfg.freeze)
    report["trainable_fraction"] = round(trainable_fraction(model), 4)
    train_manifest = None if cfg.data.get("shar_path") else cfg.data.train_manifest
    if train_manifest and cfg.data.check_lengths:
        checked = check_label_lengths(model, train_manifest, str(log_dir), "train")
        report["length_check"] = {"kept": checked.kept, "dropped": checked.dropped, "report": checked.report}
        if checked.dropped:
            print(
                f"length check: {checked.dropped} training utterances have more labels than encoder frames; "
                f"left out, listed in {checked.report}",
                file=sys.stderr,
            )
        if checked.kept == 0:
            raise UserError(
                f"no training utterance fits the encoder's output length (CTC needs a frame per label; see "
                f"{checked.report}); use a vocabulary with longer tokens or a base that subsamples less"
            )
        train_manifest = checked.manifest
    model.setup_training_data(
        dataset_config(
            model, train_manifest, cfg.data, train=True, rank=trainer.global_rank, world_size=trainer.world_size
        )
    )
    model.setup_validation_data(dataset_config(model, cfg.data.dev_manifest, cfg.data, train=False))
    with open_dict(model.cfg):
        model.cfg.optim = cfg.model.optim
        model.cfg[MODEL_LANGUAGE_KEY] = cfg.get("lang")  # the .nemo records its language for evaluate, tune-lm
    model.setup_optimization(cfg.model.optim)
    if cfg.get("distill") and cfg.distill.get("teacher"):
        from asr_transfer.training.distill import attach_distillation

        attach_distillation(model, cfg.distill)
    from asr_transfer.training.grafts import guard_training_step, rank_zero_decides_best_checkpoint

    guard_training_step(model)
    rank_zero_decides_best_checkpoint(trainer)
    trainer.callbacks.extend(
        [
            freeze_schedule,
            DevCER(),
            MetricsCSV(log_dir),
            Throughput(str(log_dir / "throughput.json"), model_sample_rate(model)),
            *callbacks,
        ]
    )
    if trainer.global_rank == 0:
        save_run_record(log_dir, cfg, report, argv)
    trainer.fit(model)
    return log_dir


def printable(cfg: DictConfig, what: str) -> str:
    """A fact the recipes ask for instead of spelling it out: the run folder, the model name, the whole
    config, a config key."""
    from asr_transfer.layout import trained_model_name

    if what == "run-dir":
        return str(run_dir_of(cfg.exp_manager))
    if what == "model-name":
        return trained_model_name(cfg)
    if what == "config":
        return OmegaConf.to_yaml(cfg).rstrip("\n")
    value = OmegaConf.select(cfg, what, default=ConfigError)
    if value is ConfigError or isinstance(value, DictConfig):
        raise ConfigError(f"--print {what}: not run-dir, model-name, config or a config key holding a value")
    return "" if value is None else str(value)


def option_mapping(text: str) -> tuple[str, str]:
    key, separator, option = text.partition("=")
    if not separator or not key or not option:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=OPTION, e.g. init.nemo=--base")
    return key, option


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-transfer finetune",
        description="Fine-tune a NeMo CTC model on a new language or domain: restore a base (init.pretrained or "
        "init.nemo) or start from scratch (init.scratch=true with init.arch), swap the vocabulary, freeze or "
        "re-initialize encoder blocks, train with Lightning and NeMo's exp_manager. The run folder is "
        "exp_manager.exp_dir/exp_manager.name/exp_manager.version; a rerun resumes it. Every key of the config is "
        "typed (asr_transfer/training/schema.py): a misspelt one is refused with the nearest valid key.",
        epilog="Overrides (Hydra's grammar): key=value changes a key, +key=value adds one to trainer, model.optim or "
        "model.spec_augment or model.preprocessor, ~key removes one there. Example: asr-transfer finetune --config "
        "recipes/conf/quartznet15x5_char.yaml data.train_manifest=train.json data.dev_manifest=dev.json "
        "vocab.dir=tokenizers/de/char --steps 20000",
    )
    parser.add_argument("--config", required=True, help="YAML config (recipes/conf/*.yaml)")
    parser.add_argument(
        "--print",
        metavar="WHAT",
        dest="print_what",
        help="print what this config and its overrides name, and exit: run-dir (the run folder), model-name "
        "(the stem exports are named with), config (the whole resolved config, every default included) or a "
        "config key such as vocab.kind",
    )
    parser.add_argument("--print-run-dir", action="store_true", help="the same as --print run-dir")
    run = parser.add_argument_group("run options (shorthands for the overrides every recipe sets)")
    run.add_argument("--exp-dir", help="exp_manager.exp_dir: the run folder is EXP_DIR/NAME/VERSION")
    run.add_argument("--name", help="exp_manager.name")
    run.add_argument("--version", help="exp_manager.version")
    run.add_argument("--steps", type=int, help="trainer.max_steps")
    run.add_argument("--val-every", type=int, help="trainer.val_check_interval, at most --steps")
    run.add_argument("--seed", type=int, help="seed")
    run.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help="early stopping: end the run after N validations without a new best dev WER (CER for a language "
        "judged by CER); the schedule stays that of --steps",
    )
    run.add_argument(
        "--no-progress-bar", dest="progress_bar", action="store_const", const=False, help="no training progress bar"
    )
    run.add_argument(
        "--option-name",
        type=option_mapping,
        action="append",
        default=[],
        metavar="KEY=OPTION",
        help="how error messages name a config key a recipe sets from its own option, e.g. init.nemo=--base",
    )
    parser.add_argument("overrides", nargs="*", help="key=value | +key=value | ~key")
    return parser


def plan_of(args: argparse.Namespace):
    from asr_transfer.training.run import RunPlan

    return RunPlan(
        config=args.config,
        exp_dir=args.exp_dir,
        name=args.name,
        version=args.version,
        steps=args.steps,
        val_every=args.val_every,
        seed=args.seed,
        progress_bar=args.progress_bar,
        patience=args.patience,
        overrides=tuple(args.overrides),
        option_names=dict(args.option_name),
    )


def main(argv: list[str] | None = None) -> int:
    from asr_transfer.training.run import launched_as_rank_zero, load_plan, run_finetune

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_intermixed_args(argv)  # recipes append run options after overrides
    plan = plan_of(args)
    if args.print_run_dir or args.print_what:
        print(printable(load_plan(plan), args.print_what or "run-dir"))
        return 0
    log_dir = run_finetune(plan, argv=argv).run_dir
    if launched_as_rank_zero():
        print(f"run folder: {log_dir}")
    return 0
