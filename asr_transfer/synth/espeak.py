"""In-process espeak-ng speech synthesis through ctypes.

In: text, an espeak voice name (``de``, ``en-gb-scotland+f3``), speed in words per minute and pitch
(0-99). Out: a float32 numpy waveform at espeak's native rate (22050 Hz).

The library and its voice data come from PyPI's ``espeakng-loader`` wheel, so no system package is
needed; a Debian ``libespeak-ng`` is used when that wheel is absent. One process holds one engine:
espeak-ng keeps global state, so parallel synthesis uses worker processes, not threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import lru_cache

import numpy as np

from asr_transfer.errors import UserError

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_CHARS_UTF8 = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_POS_CHARACTER = 1

_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakUnavailable(UserError):
    pass


def _library_and_data() -> tuple[str, str | None]:
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except ImportError:
        found = ctypes.util.find_library("espeak-ng")
        if not found:
            raise EspeakUnavailable(
                "espeak-ng is not installed: run `pip install espeakng-loader` (or `apt-get install libespeak-ng1`)"
            ) from None
        return found, None


class Espeak:
    """One initialised espeak-ng engine; call :meth:`synthesize` for each utterance."""

    def __init__(self) -> None:
        library_path, data_path = _library_and_data()
        self._lib = ctypes.CDLL(library_path)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        data = data_path.encode() if data_path else None
        rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate <= 0:
            raise EspeakUnavailable(f"espeak-ng failed to initialise with data at {data_path}")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        # Keep a reference: ctypes frees a callback object that Python no longer holds.
        self._callback = _SYNTH_CALLBACK(self._collect)
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, num_samples, _events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        return 0

    def _select_voice(self, voice: str) -> None:
        """Select ``voice``; a regional name espeak-ng files under its language (en-gb is "en") falls back."""
        name, _, variant = voice.partition("+")
        fallback = name.split("-")[0] + (f"+{variant}" if variant else "")
        for candidate in dict.fromkeys((voice, fallback)):
            if self._lib.espeak_SetVoiceByName(candidate.encode()) == 0:
                return
        raise UserError(f"espeak-ng has no voice {voice!r}; `espeak-ng --voices` lists the installed ones")

    def synthesize(self, text: str, voice: str, words_per_minute: int = 160, pitch: int = 50) -> np.ndarray:
        self._select_voice(voice)
        self._lib.espeak_SetParameter(_PARAM_RATE, int(words_per_minute), 0)
        self._lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._lib.espeak_SetParameter(_PARAM_RANGE, 50, 0)
        self._chunks = []
        encoded = text.encode("utf-8") + b"\0"
        status = self._lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
        if status != 0:
            raise RuntimeError(f"espeak-ng failed ({status}) on {text!r}")
        self._lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        return samples.astype(np.float32) / 32768.0


@lru_cache(maxsize=1)
def _engine_for_process(pid: int) -> Espeak:
    return Espeak()


def engine() -> Espeak:
    """The engine of this process, created on first use (forked workers get their own)."""
    return _engine_for_process(os.getpid())


def variant_names() -> list[str]:
    """Voice variants shipped with the espeak-ng data (``f1``, ``m3``, ``klatt`` ...), sorted."""
    _, data_path = _library_and_data()
    if data_path is None:
        for candidate in ("/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/share/espeak-ng-data"):
            if os.path.isdir(candidate):
                data_path = candidate
                break
    variants_dir = os.path.join(data_path or "", "voices", "!v")
    if not os.path.isdir(variants_dir):
        return []
    return sorted(os.listdir(variants_dir))
