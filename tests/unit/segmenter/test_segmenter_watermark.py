"""The read watermark: the timer fires nothing past the receipt time of what was handled."""

from retarget.segmenter.watermark import NEVER, ReadWatermark

NOW = 1_000.0


def test_caught_up_partitions_allow_now() -> None:
    mark = ReadWatermark()
    mark.assigned({0: 10, 1: 0})
    assert mark.at(NOW, {0: 10, 1: 0}.get) == NOW


def test_a_partition_behind_holds_the_watermark_at_its_last_handled_receipt_time() -> None:
    mark = ReadWatermark()
    mark.assigned({0: 0, 1: 0})
    mark.handled(0, 5, received_at_ms=400_000)  # read up to a record received at t=400 s
    assert mark.at(NOW, {0: 9, 1: 0}.get) == 400.0
    mark.handled(0, 9, received_at_ms=900_000)  # caught up
    assert mark.at(NOW, {0: 9, 1: 0}.get) == NOW


def test_nothing_is_known_read_before_the_first_record_of_a_backlog_or_the_first_fetch() -> None:
    mark = ReadWatermark()
    mark.assigned({0: 0})
    assert mark.at(NOW, {0: 50}.get) == NEVER  # a backlog, nothing handled yet
    assert mark.at(NOW, {}.get) == NEVER  # high watermark not fetched yet


def test_a_partition_whose_start_is_unknown_holds_everything_until_it_is_read() -> None:
    mark = ReadWatermark()
    mark.assigned({0: 3, 1: None})
    assert mark.at(NOW, {0: 3, 1: 7}.get) == NEVER
    mark.handled(1, 7, received_at_ms=999_000)
    assert mark.at(NOW, {0: 3, 1: 7}.get) == NOW


def test_a_reassignment_forgets_what_was_read() -> None:
    mark = ReadWatermark()
    mark.assigned({0: 0})
    mark.handled(0, 5, received_at_ms=500_000)
    mark.assigned({0: 5, 1: 0})
    assert mark.at(NOW, {0: 8, 1: 0}.get) == NEVER
