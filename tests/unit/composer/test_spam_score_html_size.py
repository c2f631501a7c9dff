"""SpamAssassin's HTML_IMAGE_ONLY_04 … _32 give up to 2.8 points to an HTML part that has an
image (every email has the open pixel) and at most 3,200 bytes of HTML. The bundled layout
keeps every shipped campaign above that however short the links are; the scores themselves
are measured with the real SpamAssassin in tests/integration/composer/test_spam_score.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retarget.common.testing import FakeClock
from retarget.composer.compose import Composer
from retarget.composer.render import CampaignTemplates
from retarget.composer.samples import CAMPAIGNS, SAMPLE_WORKSPACE, sample_trigger

IMAGE_ONLY_UP_TO = 3_200  # bytes of HTML: the top of HTML_IMAGE_ONLY_32 (20_html_tests.cf)
MARGIN = 400  # a shorter name, a cart without images, a text-only product line


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_every_shipped_html_part_is_too_long_for_the_image_only_rules(campaign: str) -> None:
    composer = Composer(
        CampaignTemplates.from_folder(None),
        FakeClock(),
        link_secret=b"k",
        public_url="https://t.io",  # as short as a public URL gets: the links are shortest
        link_ttl=timedelta(days=60),
    )
    recipient = {"email": "a@b.io", "first_name": None, "last_name": None}
    html = composer.compose(
        sample_trigger(campaign, {"recipient": recipient}), SAMPLE_WORKSPACE
    ).rendered.html
    assert html is not None and "<img" in html
    assert len(html.encode()) > IMAGE_ONLY_UP_TO + MARGIN, len(html.encode())
