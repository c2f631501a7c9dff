"""The local stack's configuration seal key (RETARGET_CONFIG_SEAL_KEY_FILE): one file, mode 0600.

It seals the DKIM private keys in the config store and on the change feed (retarget.config.seal).
Made once, kept with the stack's data; losing it makes the stored DKIM keys useless (generate
new ones). Production keeps its key in the secret store and mounts it as a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from retarget.config.seal import new_seal_key
from retarget.devstack.paths import devstack_dir

SEAL_KEY_ENV = "RETARGET_CONFIG_SEAL_KEY_FILE"


def seal_key_file() -> Path:
    """The key file, made on first use (created unreadable by others before the key goes in)."""
    path = devstack_dir() / "secrets" / "config_seal_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: theirs is the key
            return path
        with os.fdopen(fd, "w") as file:
            file.write(new_seal_key() + "\n")
    return path
