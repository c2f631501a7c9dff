"""Every bundled template, rendered for its sample profile through the preview path (the
complete message the sender would get), scored by the real SpamAssassin (Debian's package,
local rules only): each scores below 2.0; a spammy template scores above 5, which proves the
scorer scores. One SpamAssassin process scores all of them (start-up is most of its cost),
then `retarget preview --spam-score` runs as a user would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retarget.composer.preview import render_preview
from retarget.composer.samples import CAMPAIGNS, SAMPLE_WORKSPACE
from retarget.composer.spam_score import BUNDLED_MAX, SPAM_THRESHOLD, SpamScore
from retarget.composer.spamassassin import SpamAssassin
from retarget.composer.testing import SPAMMY_TEMPLATE

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spamassassin() -> SpamAssassin:
    if shutil.which("spamassassin") is None:
        pytest.fail(
            "SpamAssassin is not installed: `make system-deps` (as root) installs Debian's spamassassin"
        )
    return SpamAssassin()


@pytest.fixture(scope="module")
def scores(spamassassin: SpamAssassin) -> dict[str, SpamScore]:
    """The bundled campaigns and the spammy draft ("spammy"), scored in one batch."""
    messages = {name: render_preview(SAMPLE_WORKSPACE, name, None, None)["message"] for name in CAMPAIGNS}
    messages["spammy"] = render_preview(SAMPLE_WORKSPACE, "win_big", SPAMMY_TEMPLATE, None)["message"]
    return dict(zip(messages, spamassassin.score(list(messages.values())), strict=True))


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_every_bundled_template_scores_below_2(scores: dict[str, SpamScore], campaign: str) -> None:
    spam = scores[campaign]
    assert spam.score < BUNDLED_MAX, [(r.name, r.points) for r in spam.rules]


def test_a_spammy_template_scores_above_the_spam_threshold(scores: dict[str, SpamScore]) -> None:
    spam = scores["spammy"]
    assert spam.score > SPAM_THRESHOLD
    hits = {rule.name: rule for rule in spam.rules}
    assert {"DEAR_FRIEND", "GUARANTEED_100_PERCENT"} <= set(hits)
    assert hits["DEAR_FRIEND"].points > 1 and hits["DEAR_FRIEND"].description


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", "preview", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=180,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )


def test_the_cli_prints_the_score_and_fails_above_max_score(
    spamassassin: SpamAssassin, tmp_path: Path
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).parents[3] / "services/composer/retarget/composer/templates", templates)
    (templates / "abandoned_cart.subject.txt").write_text(SPAMMY_TEMPLATE["subject"] or "")
    (templates / "abandoned_cart.html").write_text(SPAMMY_TEMPLATE["html"] or "")
    (templates / "abandoned_cart.txt").unlink()
    spammy = cli("--campaign", "abandoned_cart", "--templates", str(templates), "--spam-score", cwd=tmp_path)
    assert spammy.returncode == 3, spammy.stderr
    assert "Spam score: " in spammy.stdout and "DEAR_FRIEND" in spammy.stdout
    assert "above --max-score 5.0" in spammy.stderr
    clean = cli("--campaign", "post_purchase", "--spam-score", "--max-score", "2", cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert "Spam score: " in clean.stdout and "HTML_MESSAGE" in clean.stdout
