"""Transfer fine-tuning on NeMo: restore a base, swap its vocabulary, freeze, train.

``config`` (fine-tuning configs and overrides), ``models`` (bases, scratch models, vocabulary swaps),
``data`` (dataset configs, CTC length check), ``freezing``, ``callbacks`` (curves, dev CER,
throughput) and ``finetune`` (the run). Inference lives in ``asr_transfer.inference``; reports and
weight introspection in ``asr_transfer.analysis``.
"""
