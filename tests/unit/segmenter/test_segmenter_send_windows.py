"""The workspaces' send windows cache: defaults, reloads, and keeping the last known on failure."""

from __future__ import annotations

from datetime import time

import pytest

from retarget.segmenter.send_time import SendWindow
from retarget.segmenter.send_windows import SendWindows, parse_quiet_hours


def test_quiet_hours_parse_like_the_senders():
    assert parse_quiet_hours("21:00-08:00") == (time(21), time(8))
    assert parse_quiet_hours("08:00-08:00") is None and parse_quiet_hours(None) is None
    with pytest.raises(ValueError, match="HH:MM-HH:MM"):
        parse_quiet_hours("9pm-8am")


async def test_an_unknown_workspace_gets_utc_and_the_default_quiet_hours():
    windows = SendWindows(default_quiet=(time(21), time(8)))
    assert windows("ws") == SendWindow("UTC", time(21), time(8))
    assert windows.attempted.is_set()  # nothing to load: events need not wait


async def test_a_failed_reload_keeps_the_last_known_windows_and_counts_as_attempted():
    answers: list[dict[str, SendWindow] | Exception] = [{"ws": SendWindow("Europe/Berlin")}, OSError("down")]

    async def fetch() -> dict[str, SendWindow]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    windows = SendWindows(fetch)
    assert not windows.attempted.is_set()
    assert await windows.refresh() and windows.attempted.is_set()
    assert await windows.refresh() is False
    assert windows("ws").timezone == "Europe/Berlin"


async def test_the_first_load_failing_still_lets_events_through():
    async def down() -> dict[str, SendWindow]:
        raise OSError("PostgreSQL away")

    windows = SendWindows(down)
    assert await windows.refresh() is False
    assert windows.attempted.is_set() and windows("ws") == SendWindow()


def test_the_settings_refuse_unreadable_quiet_hours():
    from pydantic import ValidationError

    from retarget.segmenter.settings import SegmenterSettings

    with pytest.raises(ValidationError, match="HH:MM-HH:MM"):
        SegmenterSettings(quiet_hours="9pm-8am")
    assert SegmenterSettings(quiet_hours="21:00-08:00").quiet_hours == "21:00-08:00"
