"""Token-level n-gram language models for CTC beam search: ``train-lm`` builds one (``ngram``) from a
model's own tokens (``tokens``), written as the ARPA file NeMo's ``NGramGPULanguageModel`` reads."""
