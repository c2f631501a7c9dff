"""docker-compose.yml against what makes it run on podman (tests/compose/smoke.sh runs it for
real; these catch, in a second, the mistakes that cost a smoke run to find)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
#: what the smoke test starts: everything not behind a profile
DEFAULT_SERVICES = {name: s for name, s in SERVICES.items() if not s.get("profiles")}


def qualified(image: str, *, built_here: bool = False) -> str:
    """The name podman resolves a short image name to (localhost/ for one it built)."""
    name = image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"
    first = name.split("/", 1)[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        return name
    if built_here:
        return f"localhost/{name}"
    return f"docker.io/{name}" if "/" in name else f"docker.io/library/{name}"


def built_images() -> set[str]:
    script = (ROOT / "deploy" / "podman" / "build-images.sh").read_text()
    return set(re.findall(r"^\s+\[\w+\]=(\S+)$", script, re.MULTILINE))


def test_every_image_the_smoke_test_starts_is_built_locally_under_that_name():
    images = {
        qualified(s["image"], built_here="build" in s) for s in DEFAULT_SERVICES.values() if "image" in s
    }
    assert images, "compose names no images?"
    assert images - built_images() == set(), "make images does not build these"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    bases = {qualified(m) for m in re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)}
    assert bases - built_images() == set()


def test_services_built_from_the_dockerfile_share_one_image_name():
    built = {name: s for name, s in SERVICES.items() if "build" in s}
    assert {s.get("image") for s in built.values()} == {"retarget:latest"}, (
        "a service without image: gets an image (and a build) of its own"
    )


def test_healthchecks_are_shell_commands_podman_runs():
    for name, service in DEFAULT_SERVICES.items():
        check = service.get("healthcheck")
        if check:
            assert check["test"][0] == "CMD-SHELL", name


def test_each_service_healthcheck_asks_its_own_ops_port_for_readyz():
    ops_vars = (
        "RETARGET_INGEST_OPS_PORT",
        "RETARGET_MAILBOX_OPS_PORT",
        "RETARGET_WEB_PORT",
        "RETARGET_OPS_PORT",
    )
    checked = 0
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        ports = [env[v] for v in ops_vars if v in env]
        if not ports or name == "migrate":
            continue
        command = service["healthcheck"]["test"][1]
        assert f"127.0.0.1:{ports[0]}/readyz" in command, name
        checked += 1
    assert checked == 5  # ingest, its mailbox, segmenter, composer, sender


def mount_points(service: dict) -> list[PurePosixPath]:
    return [PurePosixPath(v.split(":")[1]) for v in service.get("volumes", [])]


def inside_a_volume(service: dict, path: str) -> bool:
    return any(PurePosixPath(path).is_relative_to(m) for m in mount_points(service))


def test_state_is_written_inside_the_volumes():
    """Otherwise it lives in the container's layer and is lost when the container is recreated."""
    segmenter = SERVICES["segmenter"]
    assert inside_a_volume(segmenter, segmenter["environment"]["RETARGET_DATA_DIR"])
    kafka = SERVICES["kafka"]
    assert inside_a_volume(kafka, kafka["environment"]["KAFKA_LOG_DIRS"])
    postgres = SERVICES["postgres"]
    assert inside_a_volume(postgres, postgres["environment"].get("PGDATA", "/var/lib/postgresql/data"))
    mail = SERVICES["mail"]
    assert inside_a_volume(mail, mail["command"][mail["command"].index("--dir") + 1])


def test_the_services_send_mail_to_the_catcher_where_it_listens():
    smtp = urlsplit(SERVICES["sender"]["environment"]["RETARGET_SMTP_URL"])
    catcher = SERVICES[smtp.hostname or ""]
    assert catcher["command"][catcher["command"].index("--port") + 1] == str(smtp.port)
    assert "0.0.0.0" in catcher["command"], "listening on loopback, the catcher is unreachable"


def test_grafana_is_optional_and_everything_else_starts_by_default():
    assert SERVICES["grafana"].get("profiles") == ["grafana"]
    assert {name for name, s in SERVICES.items() if s.get("profiles")} == {"grafana", "cli"}


def kafka_property_name(variable: str) -> str:
    """What the Kafka stand-in's entrypoint makes of one KAFKA_* variable."""
    run = ROOT / "deploy" / "images" / "kafka" / "run"
    script = f'source <(sed -n "/^property_name()/,/^}}/p" {run}); property_name "$1"'
    result = subprocess.run(["bash", "-c", script, "-", variable], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_the_kafka_stand_in_names_properties_like_the_real_image():
    assert kafka_property_name("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP") == "listener.security.protocol.map"
    assert kafka_property_name("KAFKA_LOG_DIRS") == "log.dirs"
    # "__" is an underscore and "___" a dash, for the property names that have them
    assert kafka_property_name("KAFKA_LISTENER_NAME_CONTROLLER_SASL__ENABLED") == (
        "listener.name.controller.sasl_enabled"
    )
    assert kafka_property_name("KAFKA_SOME___DASHED_NAME") == "some-dashed.name"
