"""The Node SDK test's npm packages: `npm ci` from the committed lock file into the cache.

The install folder is named by the lock file's hash, so a changed pin installs afresh and an
installed one is reused without the network (offline-safe once installed). The script is
copied beside node_modules on every run: Node resolves an ES module's imports from the
script's own folder.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from retarget.devstack.paths import cache_dir

HERE = Path(__file__).parent / "node"
SCRIPT = "send_batch.mjs"


def installed_node_sdk() -> Path:
    """The folder holding node_modules with @segment/analytics-node and the send script."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` is not installed; the Node SDK test needs Node.js and npm")
    lock = (HERE / "package-lock.json").read_bytes()
    folder = cache_dir() / f"node-sdk-{hashlib.sha256(lock).hexdigest()[:12]}"
    if not (folder / "node_modules" / ".package-lock.json").exists():
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(HERE / name, folder / name)
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"`npm ci` of the Node SDK failed in {folder}:\n{done.stderr}")
    shutil.copyfile(HERE / SCRIPT, folder / SCRIPT)
    return folder
