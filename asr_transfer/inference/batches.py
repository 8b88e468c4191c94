"""Padded waveform batches straight from a NeMo manifest, for loops that call a model's modules directly
(``shrink`` step 1, ``tune-lm``) instead of NeMo's dataloaders.

In: a manifest (``audio_filepath``; relative paths are the manifest's; text is not read) and the sample rate.
Out: waveforms resampled by NeMo's ``AudioSegment``, and (B x T signal, lengths) batches.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import Dataset

from asr_transfer.fileio import read_manifest


class AudioManifest(Dataset):
    def __init__(self, manifest: str, sample_rate: int):
        base = os.path.dirname(os.path.abspath(manifest))
        self.paths = [os.path.join(base, entry["audio_filepath"]) for entry in read_manifest(manifest)]
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from nemo.collections.asr.parts.preprocessing.segment import AudioSegment

        segment = AudioSegment.from_file(self.paths[index], target_sr=self.sample_rate)
        return torch.as_tensor(segment.samples, dtype=torch.float32)


def pad_batch(waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(wave) for wave in waveforms])
    batch = torch.zeros(len(waveforms), int(lengths.max()))
    for row, wave in enumerate(waveforms):
        batch[row, : len(wave)] = wave
    return batch, lengths
