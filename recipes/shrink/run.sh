#!/usr/bin/env bash
# Several small models from one large one (Hannan et al., Interspeech 2025), offline on synthetic speech:
# a German teacher transferred from the shipped English FastConformer base, then `asr-transfer shrink`
# makes students of 1/2, 1/4 and 1/8 of its encoder, with scratch and KD baselines, over seeds.
# Usage: recipes/shrink/run.sh [options]   (relative paths are taken from the current directory)
#   Stage 0: synthesize a Common Voice release with espeak-ng (or use --cv)
#   Stage 1: the teacher: recipes/<lang>/run.sh stages 0-5 (BPE, from --base) -> OUT/teacher/<model>.nemo,
#            trained until its dev WER stops improving (no new best in --teacher_patience validations;
#            --teacher_steps is the length of its learning-rate schedule and the most it may take)
#   Stage 2: shrink: step 1 (one run, random init, until its dev loss stops improving: --rl_patience
#            checks), step 2, baselines scratch (same total compute), scratch-1x (step 1 ablated),
#            scratch-3x and kd, every seed
#   Stage 3: shrink variants: teacher init (every seed); step 1 per student (first seed); step 1 with the
#            CLIP term alone (--loss clip, first seed: the summed loss's output match drowns it)
set -euo pipefail
. "$(dirname "$0")/../lib/stages.sh"
option lang de "target language (a recipes/<lang>/run.sh)"
option cv "" "a Common Voice folder or tarball (default: synthesize --clips clips)"
option clips 2000 "clips to synthesize"
option base "$repo/recipes/en_base/model/en_tiny_fastconformer_bpe128.nemo" "the base the teacher is transferred from"
option bpe_size 64 "SentencePiece vocabulary of the teacher"
option teacher_steps 5000 "the teacher's schedule: most fine-tuning steps (early stopping ends it sooner)"
option teacher_patience 3 "the teacher stops after this many validations without a new best dev WER"
option students 4,2,1 "encoder layers of the students"
option rl_steps 1000 "step 1's schedule: most steps (early stopping ends it sooner)"
option rl_patience 3 "step 1 stops after this many dev-loss checks without a new best"
option rl_checks 40 "step 1's dev-loss checks over --rl_steps"
option ctc_steps 500 "step 2's steps (scratch-1x: as many; scratch-3x: 3x; scratch, kd: plus step 1's compute)"
option seeds 0,1,2 "seeds of stage 2"
option out exp/shrink "output folder"
option jobs "$(nproc)" "worker processes for synthesis and data preparation"
parse_options "$@"

conf=$repo/recipes/conf/tiny_fastconformer_bpe.yaml
corpus=${cv:-$out/cv_synthetic}
teacher_dir=$out/teacher
data=$teacher_dir/data
vocab=$(cli train-tokenizer "$teacher_dir/tokenizers" --lang "$lang" --kind bpe --vocab-size "$bpe_size" --print-dir)
teacher=$teacher_dir/$(cli finetune --config "$conf" lang="$lang" init.nemo="$base" vocab.dir="$vocab" --print model-name).nemo
shrink_args=(--teacher "$teacher" --students "$students" --audio "$data/train.json" --train "$data/train.json"
    --dev "$data/dev.json" --test "$data/test.json" --config "$conf" --lang "$lang" --rl-steps "$rl_steps"
    --rl-patience "$rl_patience" --set "step1.validations=$rl_checks" --ctc-steps "$ctc_steps" "$out/students")
first_seed=${seeds%%,*}

if run_stage 0 && [ -z "$cv" ]; then
    log_stage 0 "synthesize Common Voice ($clips clips)" "espeak-ng" "$corpus"
    cli synth-cv "$corpus" --lang "$lang" --clips "$clips" --jobs "$jobs" --seed 7
fi
if run_stage 1; then
    log_stage 1 "teacher: $lang BPE $bpe_size from $(basename "$base"), until dev WER stops improving \
(patience $teacher_patience, at most $teacher_steps steps)" "$corpus" "$teacher"
    "$repo/recipes/$lang/run.sh" "$corpus" --config "$conf" --bpe_size "$bpe_size" --init_nemo "$base" \
        --out "$teacher_dir" --jobs "$jobs" --stop_stage 5 \
        --overrides "--steps $teacher_steps --no-progress-bar --patience $teacher_patience"
fi
if run_stage 2; then
    log_stage 2 "shrink: students $students, seeds $seeds" "$teacher" "$out/students/RESULTS.md"
    cli shrink "${shrink_args[@]}" --seeds "$seeds" --baselines scratch,scratch-1x,scratch-3x,kd
fi
if run_stage 3; then
    log_stage 3 "shrink variants: teacher init (seeds $seeds), step 1 per student and CLIP alone (seed \
$first_seed)" "$teacher" "$out/students/RESULTS.md"
    cli shrink "${shrink_args[@]}" --seeds "$seeds" --init teacher --baselines none
    cli shrink "${shrink_args[@]}" --seeds "$first_seed" --separately --baselines none
    cli shrink "${shrink_args[@]}" --seeds "$first_seed" --loss clip --baselines none
fi
