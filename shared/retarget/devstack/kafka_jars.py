"""The Kafka jars: fetched once with Maven from deploy/kafka/pom.xml into a shared cache.

The pom is the single source of truth for versions; the cache folder is named after
the Kafka version and remembers the pom's hash, so editing the pom triggers a re-fetch.
Jars land in a temporary folder that is renamed into place only when Maven succeeded,
so an interrupted fetch never leaves a half-filled cache that looks complete.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from retarget.devstack.errors import DevstackError
from retarget.devstack.paths import cache_dir, repo_root
from retarget.devstack.procs import tail
from retarget.devstack.progress import console, say

_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_MARKER = ".complete"


def pom_path() -> Path:
    return repo_root() / "deploy" / "kafka" / "pom.xml"


def kafka_version() -> str:
    prop = ET.parse(pom_path()).getroot().find("m:properties/m:kafka.version", _NS)
    if prop is None or not prop.text:
        raise DevstackError(f"{pom_path()} has no <kafka.version> property", "restore deploy/kafka/pom.xml")
    return prop.text.strip()


def libs_dir() -> Path:
    """~/.cache/retarget/kafka-<version>/libs (RETARGET_CACHE_DIR replaces ~/.cache/retarget)."""
    return cache_dir() / f"kafka-{kafka_version()}" / "libs"


def _pom_hash() -> str:
    return hashlib.sha256(pom_path().read_bytes()).hexdigest()


def jars_ready() -> bool:
    marker = libs_dir() / _MARKER
    return marker.is_file() and marker.read_text().strip() == _pom_hash()


def check_jars(libs: Path) -> None:
    """Refuse a jar set that would start a broker that is silent or half-missing."""
    names = {p.name for p in libs.glob("*.jar")}
    version = kafka_version()
    problems = [
        f"missing {jar}"
        for jar in (f"kafka_2.13-{version}.jar", f"kafka-clients-{version}.jar")
        if jar not in names
    ]
    slf4j = sorted(n for n in names if re.fullmatch(r"slf4j-api-[\d.]+\.jar", n))
    if len(slf4j) != 1:
        problems.append(f"expected one slf4j-api jar, found {slf4j or 'none'}")
    # log4j-slf4j2-impl is an SLF4J 2 provider: with slf4j-api 1.x the broker logs nothing.
    elif any(n.startswith("log4j-slf4j2-impl-") for n in names) and not slf4j[0].startswith("slf4j-api-2."):
        problems.append(f"{slf4j[0]} cannot load log4j-slf4j2-impl (needs slf4j-api 2.x)")
    for jar in ("log4j-api-", "log4j-core-", "log4j-slf4j2-impl-"):
        if not any(n.startswith(jar) for n in names):
            problems.append(f"missing {jar}*.jar")
    if problems:
        raise DevstackError(
            f"the Kafka jars in {libs} are inconsistent: {'; '.join(problems)}",
            f"fix deploy/kafka/pom.xml if needed, delete {libs.parent} and run `retarget devstack fetch-kafka`",
        )


def fetch_kafka(*, force: bool = False) -> Path:
    """Copy Kafka and its dependencies into the cache with Maven (only when missing)."""
    libs = libs_dir()
    if jars_ready() and not force:
        check_jars(libs)
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevstackError(
            "mvn not found: the Kafka jars are fetched from Maven Central with Maven",
            "install Maven (as root, `make system-deps` does: `apt-get install maven`), "
            "or set RETARGET_KAFKA_BOOTSTRAP to an existing cluster",
        )
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = libs.with_name("mvn.log")
    argv = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(pom_path()),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    say(f"kafka: fetching Kafka {kafka_version()} jars with Maven into {libs} (first time only)…")
    started = time.monotonic()
    with open(log, "wb") as out, console.status("kafka: mvn dependency:copy-dependencies…"):
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise DevstackError(
            f"mvn failed (exit {result.returncode}) fetching the Kafka jars",
            "check network access to Maven Central (or your ~/.m2/settings.xml mirror) and retry "
            "`retarget devstack fetch-kafka`",
            details=tail(log),
        )
    check_jars(staging)
    (staging / _MARKER).write_text(_pom_hash() + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    say(f"kafka: {len(list(libs.glob('*.jar')))} jars fetched in {time.monotonic() - started:.1f}s")
    return libs
