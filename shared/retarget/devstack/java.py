"""Find a Java runtime able to run Kafka 4 (Java 17 or newer)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from retarget.devstack.errors import DevstackError

MIN_JAVA = 17
_NO_JAVA = (
    "java not found: install a JDK >= 17 (as root, `make system-deps` installs Debian's), "
    "or set RETARGET_KAFKA_BOOTSTRAP to an existing cluster"
)


def java_major(java: str) -> int | None:
    """Major version from `java -version` ("17.0.15" -> 17, old style "1.8.0" -> 8)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java() -> str:
    """JAVA_HOME's java first (what the user chose), then the one on PATH."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    found = []
    for java in candidates:
        major = java_major(java)
        if major is not None and major >= MIN_JAVA:
            return java
        if major is not None:
            found.append(f"{java} is Java {major}")
    if found:
        raise DevstackError(f"{_NO_JAVA} ({'; '.join(found)})")
    raise DevstackError(_NO_JAVA)
