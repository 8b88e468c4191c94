"""Several small CTC models from one large one (Hannan et al., Interspeech 2025): ``asr-transfer shrink``.

``students`` cuts encoder layers out of a teacher, ``losses`` holds the length-masked representation and
distillation losses, ``encrl`` is step 1 (a student learns the frozen teacher's representations from
untranscribed audio), ``check`` compares a step-1 student with a random one before step 2 (dev CTC loss,
greedy WER, per-layer linear CKA to the teacher), ``compute`` counts the FLOPs of one step of each kind
(for the same-compute baseline), ``run`` drives step 1, step 2 (CTC fine-tuning through ``asr-transfer
finetune``), the baselines and the report (``report``).
"""
