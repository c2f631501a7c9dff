"""The local stack's configuration seal key: one file, readable by its owner only, kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from retarget.config.seal import SealSettings, load_seal_key
from retarget.devstack.env import stack_env
from retarget.devstack.seal_key import seal_key_file


def test_the_seal_key_file_is_made_once_mode_0600_and_named_in_the_stack_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETARGET_DEVSTACK_DIR", str(tmp_path))
    monkeypatch.delenv("RETARGET_CONFIG_SEAL_KEY_FILE", raising=False)
    path = seal_key_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_seal_key(SealSettings(config_seal_key_file=path))
    assert seal_key_file() == path and load_seal_key(SealSettings(config_seal_key_file=path)) == key
    assert stack_env()["RETARGET_CONFIG_SEAL_KEY_FILE"] == str(path)
    monkeypatch.setenv("RETARGET_CONFIG_SEAL_KEY_FILE", "/run/secrets/seal")  # the operator's wins
    assert stack_env()["RETARGET_CONFIG_SEAL_KEY_FILE"] == "/run/secrets/seal"
