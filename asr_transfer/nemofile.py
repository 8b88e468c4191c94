"""A ``.nemo`` file checked before NeMo opens it.

In: a path and how the user named it (``init.nemo=``, ``--model``, ``--init_nemo``). Out: nothing when
it is a complete NeMo archive (a tar, gzipped or not, holding ``model_config.yaml``); otherwise an
:class:`InputError` saying what is wrong with it. NeMo itself would fail deep inside ``restore_from``
with a ``tarfile.ReadError`` traceback, after a run folder was already made.
"""

from __future__ import annotations

import os
import tarfile
import zlib

from asr_transfer.errors import InputError

CONFIG_MEMBER = "model_config.yaml"


def check_nemo_file(path: str | os.PathLike, named: str) -> None:
    where = f"{named}{path}" if named.endswith("=") else f"{named} {path}"
    if not os.path.isfile(path):
        raise InputError(f"{where} does not exist; check the path")
    try:
        # Reading every member header walks the whole archive, so a truncated download shows up here.
        with tarfile.open(path, "r:*") as archive:
            names = [member.name for member in archive.getmembers()]
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise InputError(
            f"{where} is not a readable .nemo archive ({reason}); it may be truncated or another kind of file: "
            f"download or export it again"
        ) from None
    if not any(os.path.basename(name) == CONFIG_MEMBER for name in names):
        raise InputError(f"{where} is an archive without {CONFIG_MEMBER}, so not a NeMo model; give a .nemo file")
