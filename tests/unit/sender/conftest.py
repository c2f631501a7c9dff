"""Fixtures for the sender's unit tests: fakes wired into the real handler and retry loop."""

from __future__ import annotations

import pytest

from retarget.sender.testing import SenderParts, fake_sender


@pytest.fixture
def parts() -> SenderParts:
    return fake_sender()
