"""The testcontainers stack's own guards, on a real engine (podman's Docker API in
`make test-containers`): a missing image and a broker that dies say what happened at once.
The happy path is every other test of that run, which all use the containers it starts."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from retarget.devstack import containers
from retarget.devstack.errors import DevstackError

pytestmark = pytest.mark.skipif(
    os.environ.get("RETARGET_TEST_STACK") != "containers",
    reason="needs a Docker engine: run through `make test-containers`",
)


@pytest.fixture(scope="module")
def engine() -> Any:
    from testcontainers.core.docker_client import DockerClient

    return DockerClient().client


def test_a_missing_image_names_the_make_target_that_builds_it(engine: Any) -> None:
    with pytest.raises(DevstackError) as raised:
        containers.ensure_image(engine, "localhost/retarget-no-such-image:0")
    assert "localhost/retarget-no-such-image:0" in str(raised.value)
    assert "make images" in str(raised.value)


def test_the_stack_images_are_on_the_engine(engine: Any) -> None:
    for image in (containers.KAFKA_IMAGE, containers.POSTGRES_IMAGE):
        containers.ensure_image(engine, image)


def test_a_broker_that_exits_is_reported_with_its_log_not_waited_for() -> None:
    # the broker's image, started with a command that dies the way a misconfigured broker does
    port = containers._free_port()
    last_words = "retarget-test: the broker refuses to start"
    broken = containers.kafka_container(port).with_command(["sh", "-c", f"echo '{last_words}'; exit 3"])
    deadline = 300.0
    broken.start()
    try:
        started = time.monotonic()
        with pytest.raises(DevstackError) as raised:
            containers.wait_for_kafka(broken, f"127.0.0.1:{port}", timeout=deadline)
        waited = time.monotonic() - started
    finally:
        broken.stop()
    # only noticing the exit ends the wait before the deadline (seconds against minutes)
    assert waited < deadline - 10
    message = str(raised.value)
    assert "exited" in message
    assert last_words in message  # the container's log, so the reader sees why
