"""The highest version per object wins, whatever order the records arrive in; subscribers
hear only of newer versions, and one that raises stops nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from retarget.config.records import ConfigChange
from retarget.config.testing import FakeConfigFollower


def change(
    version: int,
    *,
    name: str = "abandoned_cart",
    kind: str = "campaign",
    ws: str = "shop-1",
    deleted: bool = False,
) -> ConfigChange:
    return ConfigChange(
        workspace_id=ws,
        kind=kind,
        name=name,
        version=version,
        deleted=deleted,  # type: ignore[arg-type]
        body=None if deleted else {"v": version},
        author="test",
        changed_at=datetime(2026, 11, 29, tzinfo=UTC),
    )


def test_an_older_version_never_undoes_a_newer_one():
    follower = FakeConfigFollower()
    heard: list[int] = []
    follower.subscribe(lambda c: heard.append(c.version))

    assert follower.apply(change(5))
    assert not follower.apply(change(3))  # a republished older record
    assert not follower.apply(change(5))  # the same one again
    assert follower.apply(change(9, deleted=True))

    assert heard == [5, 9]
    current = follower.current("shop-1", "campaign", "abandoned_cart")
    assert current is not None and current.deleted and current.version == 9


def test_lookups_by_workspace_and_kind_include_deleted_markers():
    follower = FakeConfigFollower(
        changes=[
            change(1, name="b"),
            change(2, name="a", deleted=True),
            change(3, ws="shop-2"),
            change(4, kind="identity", name=""),
        ]
    )
    assert [c.name for c in follower.of_workspace("shop-1", "campaign")] == ["a", "b"]
    assert [(c.workspace_id, c.name) for c in follower.of_kind("campaign")] == [
        ("shop-1", "a"),
        ("shop-1", "b"),
        ("shop-2", "abandoned_cart"),
    ]
    assert follower.current("shop-1", "identity") == change(4, kind="identity", name="")
    assert follower.current("shop-3", "campaign", "a") is None


def test_a_follower_of_some_kinds_keeps_only_those():
    follower = FakeConfigFollower(kinds=["template"])
    heard: list[ConfigChange] = []
    follower.subscribe(heard.append)
    follower.apply(change(1))
    follower.apply(change(2, kind="template", name="welcome"))
    assert [c.kind for c in heard] == ["template"]
    assert follower.of_kind("campaign") == []


def test_a_subscriber_that_raises_does_not_stop_the_others_or_the_feed():
    follower = FakeConfigFollower()
    heard: list[int] = []

    def broken(_: ConfigChange) -> None:
        raise RuntimeError("boom")

    follower.subscribe(broken)
    follower.subscribe(lambda c: heard.append(c.version))
    follower.apply(change(1))
    follower.apply(replace(change(2), name="other"))
    assert heard == [1, 2]
