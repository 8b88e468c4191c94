"""Vocabularies for CTC targets: character label lists and SentencePiece tokenizer folders."""
