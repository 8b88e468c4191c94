"""Transfer fine-tuning on NeMo: restore a base, swap its vocabulary, freeze, train, evaluate, export."""
