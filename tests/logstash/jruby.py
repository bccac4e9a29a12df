"""JRuby for the Logstash Ruby tests and benchmark: the version the pinned Logstash bundles, from
Maven Central, cached in the repository's git-ignored `.cache/jruby/<version>/`.

    python tests/logstash/jruby.py        # fetch when absent, print the jar's path

Logstash runs its Ruby filters in the JRuby it vendors, so the filters are tested under that
JRuby as well as MRI. The version is `jruby.version` in `versions.yml` of elastic/logstash at the
tag the Dockerfile pins (v8.19.20: 9.4.15.0); test_ruby_filters.py checks the two stay paired.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

LOGSTASH_VERSION = "8.19.20"
JRUBY_VERSION = "9.4.15.0"
REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "jruby" / JRUBY_VERSION
JAR = CACHE / f"jruby-complete-{JRUBY_VERSION}.jar"
ARTIFACT = f"org.jruby:jruby-complete:{JRUBY_VERSION}"
# What Logstash's config/jvm.options (v8.19.20) sets that changes how Ruby code runs.
JVM_OPTIONS = ("-Djruby.compile.invokedynamic=true", "-Dfile.encoding=UTF-8")


class JRubyUnavailable(RuntimeError):
    pass


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise JRubyUnavailable(f"{tool} is not installed (apt-get install -y {package})")
    return path


def ensure_jar() -> Path:
    """The cached jar, fetched with Maven (which checks Maven Central's checksums) when absent."""
    if JAR.is_file():
        return JAR
    mvn = _require("mvn", "maven")
    _require("java", "default-jdk-headless")
    CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            mvn,
            "--batch-mode",
            "--quiet",
            "dependency:copy",
            f"-Dartifact={ARTIFACT}",
            f"-DoutputDirectory={CACHE}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0 or not JAR.is_file():
        raise JRubyUnavailable(
            f"could not fetch {ARTIFACT} with Maven into {CACHE}:\n{result.stdout}{result.stderr}"
        )
    return JAR


def command(jar: Path) -> list[str]:
    """The argv prefix that runs a Ruby script under this JRuby, as Logstash would."""
    return [_require("java", "default-jdk-headless"), *JVM_OPTIONS, "-jar", str(jar)]


if __name__ == "__main__":
    try:
        print(ensure_jar())
    except JRubyUnavailable as error:
        sys.exit(str(error))
