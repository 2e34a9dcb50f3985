"""Files that hold secrets or preimages: the data directory 0700, its files 0600.

The data directory holds the SQLite database (invoices, webhook bodies), the generated invoice
token and the fake node's key and store (preimages): nobody but the service's user may read
them, whatever the umask (the systemd unit also sets ``UMask=0077``).
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; the directory this call creates is 0700.

    An existing directory is left as the operator made it (it may be shared, like ``/tmp``).
    """
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
        os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists with mode 0600 (created empty if missing), in a 0700 dir."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, FILE_MODE))
    os.chmod(path, FILE_MODE)
    return path
