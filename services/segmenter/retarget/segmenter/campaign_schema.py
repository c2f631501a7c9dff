"""The campaign file format now lives in retarget.config.campaign_schema (a campaign is also
workspace configuration, validated by the management API and the CLI); re-exported here so
the segmenter's imports keep working."""

from retarget.config.campaign_schema import (
    FILTER_OPERATORS,
    CampaignFile,
    Conditions,
    Count,
    Duration,
    Entry,
    EventMatch,
    PropertyTest,
    Scalar,
    Snapshot,
    Where,
    parse_duration,
)

__all__ = [
    "FILTER_OPERATORS",
    "CampaignFile",
    "Conditions",
    "Count",
    "Duration",
    "Entry",
    "EventMatch",
    "PropertyTest",
    "Scalar",
    "Snapshot",
    "Where",
    "parse_duration",
]
