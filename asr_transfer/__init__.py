"""asr-transfer: teach an existing NeMo CTC speech recognizer a new language or domain.

The package prepares Common Voice and custom corpora as NeMo manifests (`asr_transfer.manifests`),
trains character and SentencePiece vocabularies (`asr_transfer.tokenizers`), normalizes text by
per-language data files (`asr_transfer.languages`), and synthesizes Common-Voice-shaped corpora with
espeak-ng for offline tests and demos (`asr_transfer.synth`). The console script is `asr-transfer`.
"""

__version__ = "0.1.0"
