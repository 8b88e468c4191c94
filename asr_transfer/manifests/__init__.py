"""Manifest builders (Common Voice, folders, CSV/TSV, existing manifests) and manifest utilities."""
