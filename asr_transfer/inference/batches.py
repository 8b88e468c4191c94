"""Padded waveform batches straight from a NeMo manifest, for loops that call a model's modules directly
(``shrink`` step 1, ``tune-lm``) instead of NeMo's dataloaders.

In: a manifest (``audio_filepath``; relative paths are the manifest folder's, :mod:`asr_transfer.manifests.paths`;
text is not read) and the sample rate (Hz).
Out: mono waveforms read and resampled by NeMo's ``AudioSegment`` as its dataset loaders read them (a
multi-channel file averaged to one channel first), and (B x T signal, lengths) batches.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from asr_transfer.fileio import read_manifest
from asr_transfer.manifests.paths import audio_path


class AudioManifest(Dataset):
    def __init__(self, manifest: str, sample_rate: int):
        self.paths = [audio_path(entry["audio_filepath"], manifest) for entry in read_manifest(manifest)]
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from nemo.collections.asr.parts.preprocessing.segment import AudioSegment

        # without a selector AudioSegment keeps every channel, which pad_batch cannot hold
        segment = AudioSegment.from_file(self.paths[index], target_sr=self.sample_rate, channel_selector="average")
        return torch.as_tensor(segment.samples, dtype=torch.float32)


def pad_batch(waveforms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(wave) for wave in waveforms])
    batch = torch.zeros(len(waveforms), int(lengths.max()))
    for row, wave in enumerate(waveforms):
        batch[row, : len(wave)] = wave
    return batch, lengths
