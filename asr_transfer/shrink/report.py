"""The report of ``asr-transfer shrink``: every finished run in OUT_DIR/results/, side by side.

In: ``results/*.json`` (one per fine-tuning run: arm, layers, seed, parameters, step-1 and step-2 steps,
seconds and FLOPs, test WER/CER, dev curve), ``results/teacher.json`` and the step-1 checks
(``step1/**/check_L*.json``, :mod:`asr_transfer.shrink.check`). Out: ``results.csv`` (one row per run),
``RESULTS.md`` (mean +- sd over seeds per system and size; steps, FLOPs and seconds to reach the scratch
student's best dev value, with and without step 1's cost; the step-1 check; the paper's two claims,
each marked as holding here or not from these numbers; whether the 1/4-size student is within 10%
relative WER of the teacher), ``frontier.png`` (test error against parameters), ``dev_curves.png`` (dev
error against all steps taken, step 1's included) and ``student_<layers>.nemo``: per size, the student of
any arm (two-step, scratch, KD) with the best dev value.
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
from collections import defaultdict
from pathlib import Path

from asr_transfer.curves import Line, Panel, first_reaching, mean_curve, plot_curves, values
from asr_transfer.fileio import atomic_open, atomic_path
from asr_transfer.languages import primary_metric
from asr_transfer.plotting import saved_figure

RUN_COLUMNS = (
    "arm", "layers", "seed", "parameters", "step1_steps", "step1_stopped_at", "step1_seconds", "step2_steps",
    "step2_seconds", "step1_flops", "step_flops", "compute_flops", "best_dev_wer", "best_dev_cer", "test_wer",
    "test_cer", "model",
)  # fmt: skip
PAPER = "Hannan et al. 2025"
PAPER_SPEEDUP = 3  # "3x fewer training epochs"
GOAL_RELATIVE = 0.10  # the product's goal: the 1/4-size student within 10% relative WER of the teacher


def label(arm: str) -> str:
    if arm == "teacher":
        return "teacher"
    if arm == "scratch":
        return "scratch (same total compute)"
    if arm == "scratch-1x":
        return "scratch (step-2 steps: step 1 ablated)"
    if arm == "scratch-3x":
        return "scratch (3x step-2 steps)"
    if arm == "kd":
        return "KD (CTC + KL to the teacher)"
    _, mode, init, loss = arm.split("_")
    runs = "one step-1 run" if mode == "onerun" else "step 1 per student"
    return f"two-step ({runs}, {init} init, {loss.replace('-', '+')})"


def load_results(out: Path) -> tuple[dict | None, list[dict]]:
    teacher, runs = None, []
    for path in sorted((out / "results").glob("*.json")):
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        if result["arm"] == "teacher":
            teacher = result
            continue
        for metric in ("wer", "cer"):
            values = [point[f"dev_{metric}"] for point in result["curve"] if point.get(f"dev_{metric}") is not None]
            result[f"best_dev_{metric}"] = min(values, default=None)
        runs.append(result)
    return teacher, runs


def mean_sd(values: list, digits: int = 3) -> str:
    values = [value for value in values if value is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def compute_at(run: dict, step: int) -> float | None:
    """FLOPs a run has spent after ``step`` step-2 steps: step 1's plus ``step`` steps' (None: not recorded)."""
    if run.get("step_flops") is None:
        return None
    return (run.get("step1_flops") or 0) + step * run["step_flops"]


def steps_to_scratch_best(runs: list[dict], metric: str) -> list[dict]:
    """For every run but scratch: where its dev curve first reaches its scratch twin's best dev value (steps,
    FLOPs and seconds, without and with step 1's cost), beside where scratch itself first reached it."""
    scratch = {(run["layers"], run["seed"]): run for run in runs if run["arm"] == "scratch"}
    found = []
    for run in runs:
        twin = scratch.get((run["layers"], run["seed"]))
        if run["arm"] == "scratch" or twin is None or twin[f"best_dev_{metric}"] is None:
            continue
        target = twin[f"best_dev_{metric}"]
        reached = first_reaching(run["curve"], metric, target)
        own = first_reaching(twin["curve"], metric, target)
        found.append(
            {
                "arm": run["arm"],
                "layers": run["layers"],
                "seed": run["seed"],
                "scratch_steps": own["step"],
                "scratch_compute": compute_at(twin, own["step"]),
                "scratch_seconds": own["seconds"],
                "steps": reached["step"] if reached else None,
                "seconds": reached["seconds"] if reached else None,
                "steps_with_step1": reached["step"] + run["step1_steps"] if reached else None,
                "seconds_with_step1": reached["seconds"] + run["step1_seconds"] if reached else None,
                "compute": compute_at(run, reached["step"]) if reached else None,
            }
        )
    return found


def same_or_spread(values: list) -> str:
    """One number when every seed took the same steps, else mean ± sd."""
    return str(values[0]) if len(set(values)) == 1 else mean_sd(values, 0)


def flops(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def mean_of(values: list) -> float | None:
    values = [value for value in values if value is not None]
    return statistics.mean(values) if values else None


def grouped(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    groups = defaultdict(list)
    for row in rows:
        groups[(row["arm"], row["layers"])].append(row)
    return dict(sorted(groups.items(), key=lambda item: (-item[0][1], item[0][0])))


def systems_table(teacher: dict | None, runs: list[dict], metric: str) -> list[str]:
    lines = [
        "| system | layers | parameters | steps (step 1 + step 2) | FLOPs | seconds | test WER | test CER "
        f"| best dev {metric.upper()} | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    if teacher:
        lines.append(
            f"| teacher | {teacher['layers']} | {teacher['parameters']:,} | | | | {mean_sd([teacher['test_wer']])} | "
            f"{mean_sd([teacher['test_cer']])} | {mean_sd([teacher[f'dev_{metric}']])} | |"
        )
    for (arm, layers), group in grouped(runs).items():
        first = group[0]
        seconds = [run["step1_seconds"] + (run["step2_seconds"] or 0) for run in group]
        step1_steps, step2_steps = (
            same_or_spread([run[key] for run in group]) for key in ("step1_steps", "step2_steps")
        )
        lines.append(
            f"| {label(arm)} | {layers} | {first['parameters']:,} | {step1_steps} + {step2_steps} | "
            f"{flops(mean_of([run.get('compute_flops') for run in group]))} | "
            f"{statistics.mean(seconds):.0f} | {mean_sd([run['test_wer'] for run in group])} | "
            f"{mean_sd([run['test_cer'] for run in group])} | "
            f"{mean_sd([run[f'best_dev_{metric}'] for run in group])} | {len(group)} |"
        )
    return lines


def speed_table(found: list[dict]) -> list[str]:
    lines = [
        "| system | layers | reached | step-2 steps | with step 1 | FLOPs (step 1 included) | seconds | with step 1 "
        "| scratch took (steps, FLOPs, s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (arm, layers), group in grouped(found).items():
        reached = [row for row in group if row["steps"] is not None]

        def spread(key: str, rows: list[dict] = reached) -> str:
            return mean_sd([row[key] for row in rows], 0)

        lines.append(
            f"| {label(arm)} | {layers} | {len(reached)}/{len(group)} | {spread('steps')} | "
            f"{spread('steps_with_step1')} | {flops(mean_of([r['compute'] for r in reached]))} | "
            f"{spread('seconds')} | {spread('seconds_with_step1')} | {spread('scratch_steps', group)}, "
            f"{flops(mean_of([r['scratch_compute'] for r in group]))}, {spread('scratch_seconds', group)} |"
        )
    return lines


def load_checks(out: Path) -> list[dict]:
    checks = []
    for path in sorted((out / "step1").glob("**/check_L*.json")):
        with open(path, encoding="utf-8") as handle:
            checks.append(json.load(handle))
    return checks


def check_table(checks: list[dict]) -> list[str]:
    """The step-1 student against a random student of the same size and seed, at step 0 of step 2."""
    lines = [
        "| step 1 of | layers | seed | step-1 steps (stopped at; best at) | dev CTC loss: step 1 / random "
        "| dev WER: step 1 / random | CKA to the teacher per layer: step 1 / random | mean CKA: step 1 / random |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for check in sorted(checks, key=lambda c: (c["arm"], -c["layers"], c["seed"])):
        trained, random = check["step1"], check["random"]
        stopped = check["step1_stopped_at"] if check["step1_stopped_at"] is not None else "ran out"
        lines.append(
            f"| {label(check['arm'])} | {check['layers']} | {check['seed']} | {check['step1_steps']} ({stopped}; "
            f"{check['step1_best_step']}) | {trained['dev_ctc_loss']:.2f} / {random['dev_ctc_loss']:.2f} | "
            f"{mean_sd([trained['dev_wer']])} / {mean_sd([random['dev_wer']])} | "
            f"{', '.join(f'{v:.2f}' for v in trained['cka'])} / {', '.join(f'{v:.2f}' for v in random['cka'])} | "
            f"{trained['mean_cka']:.3f} / {random['mean_cka']:.3f} |"
        )
    return lines


COLLAPSED = 0.99  # mean pairwise cosine of pooled vectors above which utterances are near one vector
AT_CHANCE = 0.98  # the CLIP term's late value over ln(batch) above which it has learned ~nothing
DOMINANT = 0.8  # a term's share of step 1's late loss above which it sets the gradient


def step1_terms(check: dict) -> dict:
    """The step-1 loss terms a check recorded (``check.loss_terms``'s ``terms``); empty for an older check."""
    return (check.get("step1_loss_terms") or {}).get("terms", {})


def clip_table(checks: list[dict]) -> list[str]:
    """Step 1's CLIP term: in training (early, late, chance ln B, its share of the loss minimized) and on
    dev (retrieval of each utterance's teacher vector among all, chance 1/N; how alike pooled vectors are)."""
    lines = [
        "| step 1 of | layers | seed | CLIP term: first / last 10 steps (chance ln B) | share of the last "
        "steps' loss: CLIP / other terms | dev retrieval: step 1 / random (chance) | pooled-vector mean "
        "cosine: teacher / step 1 / random |",
        "|---|---|---|---|---|---|---|",
    ]
    for check in sorted(checks, key=lambda c: (c["arm"], -c["layers"], c["seed"])):
        terms, trained, random = step1_terms(check), check["step1"], check["random"]
        if "clip" not in trained:
            continue  # a check from before the CLIP probe
        clip = terms.get("clip")
        chance = check["step1_loss_terms"]["clip_chance"] if clip else None
        training = f"{clip['first']:.3f} / {clip['last']:.3f} ({chance:.3f})" if clip else "n/a"
        shares = " / ".join(f"{name} {term['share_of_loss']:.0%}" for name, term in terms.items()) or "n/a"
        lines.append(
            f"| {label(check['arm'])} | {check['layers']} | {check['seed']} | {training} | {shares} | "
            f"{trained['clip']['retrieval']:.3f} / {random['clip']['retrieval']:.3f} "
            f"({trained['clip']['chance']:.3f}) | "
            f"{check['teacher_pooled_cosine']:.3f} / {trained['clip']['pooled_cosine']:.3f} / "
            f"{random['clip']['pooled_cosine']:.3f} |"
        )
    return lines if len(lines) > 2 else []


def clip_findings(checks: list[dict]) -> list[str]:
    """What the CLIP table says, in sentences: a term at chance, collapsed vectors, a target that carries
    little, a loss dominated by the other term."""
    probed = [check for check in checks if "clip" in check["step1"]]
    if not probed:
        return []
    lines = []
    at_chance = [
        check
        for check in probed
        if "clip" in step1_terms(check)
        and step1_terms(check)["clip"]["last"] >= AT_CHANCE * check["step1_loss_terms"]["clip_chance"]
    ]
    if at_chance:
        lines.append(
            f"- The CLIP term ended within {1 - AT_CHANCE:.0%} of its chance value ln(B) in {len(at_chance)} of "
            f"{len(probed)} step-1 runs: there it did not learn to tell the batch's utterances apart."
        )
    near_chance = [c for c in probed if c["step1"]["clip"]["retrieval"] <= 2 * c["step1"]["clip"]["chance"]]
    if near_chance:
        lines.append(
            f"- On dev, {len(near_chance)} of {len(probed)} step-1 students found their own utterance's teacher "
            "vector no more than twice as often as chance."
        )
    collapsed = [c for c in probed if c["step1"]["clip"]["pooled_cosine"] >= COLLAPSED]
    if collapsed:
        lines.append(
            f"- {len(collapsed)} of {len(probed)} step-1 students pool every dev utterance to nearly one vector "
            f"(mean cosine >= {COLLAPSED}): the representation collapsed."
        )
    teacher_alike = [c for c in probed if c["teacher_pooled_cosine"] >= COLLAPSED]
    if teacher_alike:
        lines.append(
            f"- The teacher's own pooled vectors have mean cosine {teacher_alike[0]['teacher_pooled_cosine']:.3f}: "
            "time-pooled, its utterances barely differ, so the contrastive target carries little to learn."
        )
    dominated = [
        name
        for c in probed
        for name, term in step1_terms(c).items()
        if name != "clip" and (term["share_of_loss"] or 0) >= DOMINANT
    ]
    if dominated:
        lines.append(
            f"- The {dominated[0]} term is >= {DOMINANT:.0%} of the loss step 1 minimized in {len(dominated)} runs: "
            f"step 1 mostly matched the teacher's output ({dominated[0]}), not its representations."
        )
    return lines or ["- The CLIP term learned: above chance in training and on dev, no collapse."]


def verdict(holds: bool | None) -> str:
    return "n/a (missing runs)" if holds is None else ("holds here" if holds else "does not hold here")


def score_key(runs: list[dict], metric: str) -> str:
    """Test WER when every run has one, else the best dev value."""
    return "test_wer" if runs and all(run.get("test_wer") is not None for run in runs) else f"best_dev_{metric}"


def claims(teacher: dict | None, runs: list[dict], found: list[dict], metric: str) -> list[str]:
    """The paper's two claims, judged from this folder's numbers for the paper's method (two-step from
    random init) and for every other two-step arm here (teacher init, step 1 per student, another step-1
    loss) by the same rules (``arm_claims``); then the product's goal (``goal``)."""
    key = score_key(runs, metric)
    score = {(arm, layers): mean_of([run[key] for run in group]) for (arm, layers), group in grouped(runs).items()}
    # the paper's method first, then the variants
    arms = sorted(
        {run["arm"] for run in runs if run["arm"].startswith("twostep")}, key=lambda arm: (not paper(arm), arm)
    )
    lines = [f"## The paper's claims ({PAPER}), judged here", ""]
    if not any(paper(arm) for arm in arms):
        lines += [
            "No two-step run from random init (the paper's method) in this folder: the paper's claims are not tested.",
            "",
        ]
    if any(not paper(arm) for arm in arms):
        lines += [
            "The paper's method is two-step from random init; other two-step arms are judged by the same rules.",
            "",
        ]
    for arm in arms:
        lines += arm_claims(arm, score, found, metric, key)
    lines += goal(teacher, runs, key)
    return lines


def layer_count(size: int) -> str:
    return f"{size} layer" if size == 1 else f"{size} layers"


def paper(arm: str) -> bool:
    """Whether a two-step arm is the paper's method (random init)."""
    return "_random_" in arm


def arm_claims(arm: str, score: dict, found: list[dict], metric: str, key: str) -> list[str]:
    """Both claims for one two-step arm; ``score``: (arm, layers) -> the mean of ``key`` over its seeds.

    Claim 1 (Hannan et al. 2025): two-step has a lower WER than the alternatives: here scratch with the
    same total compute and KD, mean over seeds per size; relative gain = (alternative - two-step) /
    alternative. Holds here when lower than both at every size. Claim 2: it reaches scratch's best dev
    value in fewer steps (the paper: 3x fewer epochs): steps with step 1's counted, mean over the seeds
    that got there, against scratch's own steps to its best; holds here when every seed at every size got
    there in fewer steps."""
    sizes = sorted({layers for name, layers in score if name == arm}, reverse=True)
    name = label(arm)
    one, compared = [], True
    for size in sizes:
        mine = score.get((arm, size))
        others = {alt: score.get((alt, size)) for alt in ("scratch", "kd")}
        if mine is None or any(value is None for value in others.values()):
            compared = False
            continue
        parts = [f"{label(alt)} {value:.3f} ({(value - mine) / value:+.1%} relative)" for alt, value in others.items()]
        one.append((size, mine < min(others.values()), f"{layer_count(size)}: {mine:.3f} against {'; '.join(parts)}"))
    holds = all(ok for _, ok, _ in one) if compared and one else None
    lines = [
        f"**Claim 1: {name} has a lower {key.replace('_', ' ').upper()} than scratch with the same total compute "
        f"and KD** (relative gain of two-step over each; positive: two-step better): {verdict(holds)}.",
        "",
        *[f"- {text}" for _, _, text in one],
        "",
    ]
    rows = [row for row in found if row["arm"] == arm]
    per_size = []
    for size in sizes:
        group = [row for row in rows if row["layers"] == size]
        if not group:
            continue
        reached = [row for row in group if row["steps_with_step1"] is not None]
        scratch_steps = mean_of([row["scratch_steps"] for row in group])
        if reached:
            steps = mean_of([row["steps_with_step1"] for row in reached])
            ratio = scratch_steps / steps if steps else None
            text = (
                f"{layer_count(size)}: reached scratch's best in {len(reached)}/{len(group)} seeds, after {steps:.0f} "
                f"steps with step 1's (compute {flops(mean_of([r['compute'] for r in reached]))} FLOPs) against "
                f"scratch's {scratch_steps:.0f} ({flops(mean_of([r['scratch_compute'] for r in group]))} FLOPs): "
                f"{ratio:.2f}x fewer steps (paper: {PAPER_SPEEDUP}x)"
            )
        else:
            text = f"{layer_count(size)}: never reached scratch's best (0/{len(group)} seeds)"
        ok = len(reached) == len(group) and all(r["steps_with_step1"] < r["scratch_steps"] for r in reached)
        per_size.append((ok, text))
    holds = all(ok for ok, _ in per_size) if per_size else None
    return [
        *lines,
        f"**Claim 2: {name} reaches scratch's best dev {metric.upper()} in fewer steps** (step 1's steps "
        f"counted; the paper: {PAPER_SPEEDUP}x fewer epochs): {verdict(holds)}.",
        "",
        *[f"- {text}" for _, text in per_size],
        "",
    ]


def goal(teacher: dict | None, runs: list[dict], key: str) -> list[str]:
    """Whether the 1/4-size student (the published one, ``published_choice``) is within 10% relative of
    the teacher, and the best arm at that size (mean over seeds) for comparison."""
    if not teacher:
        return ["Goal (1/4-size student within 10% relative WER of the teacher): n/a (no teacher result).", ""]
    quarter = teacher["layers"] // 4
    teacher_value = teacher.get(key.replace("best_dev", "dev"))
    at_quarter = [run for run in runs if run["layers"] == quarter]
    if teacher_value is None or not at_quarter:
        return [f"Goal ({quarter}-layer student within 10% relative of the teacher): n/a (no such runs).", ""]
    lines = []
    chosen = published_choice(at_quarter, key.split("_")[-1]).get(quarter)
    if chosen and chosen[key] is not None:
        relative = (chosen[key] - teacher_value) / teacher_value
        lines.append(
            f"**Goal: the published {quarter}-layer student (1/4 of the teacher's {teacher['layers']}) within "
            f"{GOAL_RELATIVE:.0%} relative {key.replace('_', ' ').upper()} of the teacher**: "
            f"{'met' if relative <= GOAL_RELATIVE else 'not met'} ({label(chosen['arm'])}, seed {chosen['seed']}: "
            f"{chosen[key]:.3f} against the teacher's {teacher_value:.3f}, {relative:+.1%})."
        )
    best = min(
        ((arm, mean_of([run[key] for run in group])) for (arm, size), group in grouped(at_quarter).items()),
        key=lambda item: item[1] if item[1] is not None else float("inf"),
    )
    if best[1] is not None:
        lines.append(
            f"Best system at {quarter} layers (mean over seeds): {label(best[0])}, {best[1]:.3f} "
            f"({(best[1] - teacher_value) / teacher_value:+.1%} relative to the teacher)."
        )
    return [*lines, ""]


def plot_frontier(teacher: dict | None, runs: list[dict], metric: str, out_png: Path) -> None:
    key = f"test_{metric}" if any(run.get(f"test_{metric}") is not None for run in runs) else f"best_dev_{metric}"
    with saved_figure(str(out_png), figsize=(7, 4.5)) as (_, axes):
        by_arm = defaultdict(list)
        for (arm, _), group in grouped(runs).items():
            values = [run[key] for run in group if run[key] is not None]
            if values:
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                by_arm[arm].append((group[0]["parameters"], statistics.mean(values), sd))
        for arm, points in sorted(by_arm.items()):
            points.sort()
            axes.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                          marker="o", capsize=3, label=label(arm))  # fmt: skip
        teacher_value = teacher.get(key.replace("best_dev", "dev")) if teacher else None
        if teacher_value is not None:
            axes.scatter([teacher["parameters"]], [teacher_value], marker="*", s=160, color="black", label="teacher")
        axes.set_xscale("log")
        axes.set_xlabel("parameters")
        axes.set_ylabel(key.replace("_", " ").replace("best dev", "best dev").upper())
        axes.set_title("size against error: students and the teacher (mean ± sd over seeds)")
        axes.legend(fontsize=7)


def plot_sizes(runs: list[dict], metric: str, out_png: Path) -> None:
    """One panel per student size: each system's dev curve, mean over seeds, against all steps taken (a
    two-step run's curve shifted by its step-1 steps)."""
    panels = []
    for size in sorted({run["layers"] for run in runs}, reverse=True):
        lines = []
        for (arm, layers), group in grouped(runs).items():
            if layers == size:
                shifted = [[(step + run["step1_steps"], value) for step, value in values(run["curve"], metric)]
                           for run in group]  # fmt: skip
                steps, means, _ = mean_curve(shifted, every_curve=False)
                lines.append(Line(label(arm), steps, means, marker="."))
        panels.append(Panel(lines, xlabel="steps, step 1's included", ylabel=f"dev {metric.upper()} (mean over seeds)",
                            title=f"{size}-layer students", ylim=None, grid=False, legend_size=6))  # fmt: skip
    plot_curves(out_png, panels, panel_size=(4.5, 4))


def write_csv(runs: list[dict], teacher: dict | None, out: Path) -> None:
    with atomic_open(out / "results.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=RUN_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        if teacher:
            writer.writerow(teacher | {"best_dev_wer": teacher["dev_wer"], "best_dev_cer": teacher["dev_cer"]})
        writer.writerows(runs)


def published_choice(runs: list[dict], metric: str) -> dict[int, dict]:
    """Per size, the student of any arm (two-step, scratch, KD) with the best dev value: what a user of the
    smaller models wants, chosen on dev only. ``publish_students`` writes these and ``goal`` judges them."""
    chosen = {}
    ranked = [run for run in runs if run.get(f"best_dev_{metric}") is not None]
    for run in sorted(ranked, key=lambda run: run[f"best_dev_{metric}"]):
        chosen.setdefault(run["layers"], run)
    return chosen


def publish_students(runs: list[dict], metric: str, out: Path) -> dict[int, str]:
    """``published_choice``'s student per size, as student_<layers>.nemo; returns size -> what was published.

    A chosen run whose model was deleted (its result JSON kept) is still the choice, since dev chose it: its
    student_<layers>.nemo is left as an earlier report wrote it, or not written, and the returned text says so.
    """
    chosen = published_choice(runs, metric)
    published = {}
    for size, run in chosen.items():
        target = out / f"student_{size}.nemo"
        what = f"{run['arm']} seed {run['seed']}"
        if Path(run["model"]).is_file():
            with atomic_path(target) as tmp:
                shutil.copyfile(run["model"], tmp)
        elif target.is_file():
            what += f" (its model {run['model']} is gone: the file was left as an earlier report wrote it)"
        else:
            what += f" (its model {run['model']} is gone: not written)"
        published[size] = what
    return published


def clip_section(checks: list[dict]) -> list[str]:
    table = clip_table(checks)
    if not table:
        return []
    return [
        "## Did step 1's CLIP term learn?",
        "",
        "The contrastive term compares each utterance's time-pooled student vector with the batch's teacher "
        "vectors; at chance it equals ln(batch size). On dev, retrieval: how often a student vector is "
        "closest to its own utterance's teacher vector among all dev utterances. Mean cosine between "
        "utterances' pooled vectors: near 1, every utterance pools to nearly the same vector.",
        "",
        *table,
        "",
        *clip_findings(checks),
        "",
    ]


def write_report(out: Path, lang: str | None) -> Path:
    metric = primary_metric(lang)
    teacher, runs = load_results(out)
    write_csv(runs, teacher, out)
    plot_frontier(teacher, runs, metric, out / "frontier.png")
    plot_sizes(runs, metric, out / "dev_curves.png")
    published = publish_students(runs, metric, out)
    found = steps_to_scratch_best(runs, metric)
    checks = load_checks(out)
    lines = [
        "# Several small models from one large one",
        "",
        f"Primary metric: {metric.upper()} (best model and checkpoints chosen on dev only). Mean ± sd over seeds.",
        "",
        *systems_table(teacher, runs, metric),
        "",
        "Scratch and KD train for step 2's steps plus the CTC steps whose FLOPs equal step 1's (teacher forward "
        "passes counted; compute.json); KD's steps also pay the teacher's forward pass, which its FLOPs include.",
        "",
        f"## Steps, compute and seconds to reach the scratch student's best dev {metric.upper()}",
        "",
        "Step-2 steps and seconds until the dev curve first reaches its scratch twin's (same size and seed) best; "
        "'with step 1' adds step 1's steps and wall time; FLOPs include step 1's (teacher forward passes "
        "included; a shared step-1 run is counted in full for every student cut from it). Scratch's own steps "
        "are those to its best.",
        "",
        *speed_table(found),
        "",
        *claims(teacher, runs, found, metric),
        "## Step 1's check: the step-1 student against a random one, at step 0 of step 2",
        "",
        "Both as step 2 starts from them (their own CTC head); dev CTC loss (mean per utterance), greedy dev "
        "WER, and per layer the linear CKA (Kornblith et al. 2019) of the student layer's output with the "
        "teacher layer it was cut from, dev frames pooled, padding left out (the random student's layer j "
        "against the same teacher layer).",
        "",
        *(check_table(checks) if checks else ["No step-1 check in this folder."]),
        "",
        *clip_section(checks),
        "![test error against parameters](frontier.png)",
        "",
        "![dev curves](dev_curves.png)",
        "",
        "Published students: "
        + (", ".join(f"student_{s}.nemo = {what}" for s, what in sorted(published.items())) or "none"),
        "",
    ]
    commands = out / "commands.txt"
    if commands.is_file():
        lines += ["Made by (every shrink run into this folder):", ""]
        lines += [f"    {command}" for command in commands.read_text(encoding="utf-8").splitlines()] + [""]
    with atomic_open(out / "RESULTS.md") as handle:
        handle.write("\n".join(lines))
    return out / "RESULTS.md"
