#!/usr/bin/env bash
# Several small models from one large one (Hannan et al., Interspeech 2025), offline on synthetic speech:
# a German teacher transferred from the shipped English FastConformer base, then `asr-transfer shrink`
# makes students of 1/2, 1/4 and 1/8 of its encoder, with scratch and KD baselines, over seeds.
# Usage: recipes/shrink/run.sh [options]   (relative paths are taken from the current directory)
#   Stage 0: synthesize a Common Voice release with espeak-ng (or use --cv)
#   Stage 1: the teacher: recipes/<lang>/run.sh stages 0-5 (BPE, from --base) -> OUT/teacher/<model>.nemo
#   Stage 2: shrink: step 1 (one run, random init), step 2, baselines scratch and kd, every seed
#   Stage 3: shrink variants on the first seed: teacher init; step 1 per student; scratch at 3x steps
set -euo pipefail
. "$(dirname "$0")/../lib/stages.sh"
option lang de "target language (a recipes/<lang>/run.sh)"
option cv "" "a Common Voice folder or tarball (default: synthesize --clips clips)"
option clips 600 "clips to synthesize"
option base "$repo/recipes/en_base/model/en_tiny_fastconformer_bpe128.nemo" "the base the teacher is transferred from"
option bpe_size 64 "SentencePiece vocabulary of the teacher"
option teacher_steps 500 "the teacher's fine-tuning steps"
option students 4,2,1 "encoder layers of the students"
option rl_steps 100 "step 1's steps"
option ctc_steps 100 "step 2's steps"
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
    --ctc-steps "$ctc_steps" "$out/students")
first_seed=${seeds%%,*}

if run_stage 0 && [ -z "$cv" ]; then
    log_stage 0 "synthesize Common Voice ($clips clips)" "espeak-ng" "$corpus"
    cli synth-cv "$corpus" --lang "$lang" --clips "$clips" --jobs "$jobs" --seed 7
fi
if run_stage 1; then
    log_stage 1 "teacher: $lang BPE $bpe_size from $(basename "$base"), $teacher_steps steps" "$corpus" "$teacher"
    "$repo/recipes/$lang/run.sh" "$corpus" --config "$conf" --bpe_size "$bpe_size" --init_nemo "$base" \
        --out "$teacher_dir" --jobs "$jobs" --overrides "trainer.max_steps=$teacher_steps trainer.enable_progress_bar=false"
fi
if run_stage 2; then
    log_stage 2 "shrink: students $students, seeds $seeds" "$teacher" "$out/students/RESULTS.md"
    cli shrink "${shrink_args[@]}" --seeds "$seeds" --baselines scratch,kd
fi
if run_stage 3; then
    log_stage 3 "shrink variants, seed $first_seed" "$teacher" "$out/students/RESULTS.md"
    cli shrink "${shrink_args[@]}" --seeds "$first_seed" --init teacher --baselines none
    cli shrink "${shrink_args[@]}" --seeds "$first_seed" --separately --baselines scratch-3x
fi
