"""The Enadu service repositories of the end-to-end world, small but built for real.

``enadu/enadu`` (branch ``be-dev``) holds backend/, batch/ and common/ and a ``gradlew`` that stands
in for Gradle, which cannot be fetched here: it compiles nothing, but runs the module's "tests"
(files ``<module>/src/test/*.test`` holding ``pass`` or ``fail``), writes their JUnit XML where
Gradle writes it (``<module>/build/test-results/test/TEST-*.xml``) and exits 1 when one fails, as
``gradle test`` does; ``bootJar`` writes ``<module>/build/libs/app.jar`` from the module's sources.
Each run appends a line to ``caches/enadu-runs.txt`` in Gradle's user home (GRADLE_USER_HOME, else
``~/.gradle``) and prints how many earlier runs it found there, a stand-in for Gradle's caches.
``enadu/enadu-frontend`` (branch ``fe-dev``) is a tiny npm package whose ``npm ci`` (no
dependencies: nothing to download) and ``npm run build`` run for real.

Each Dockerfile is ``FROM scratch`` plus what the build produced, and says how its pods behave in the
Kubernetes test world with the label ``io.enadu.test.kind`` (tests/support/kubeworld/README.md:
no label is a healthy app; ``crashloop`` crash-loops; ``slowN`` starts slowly ...).
"""

from __future__ import annotations

from typing import Dict, Optional

GRADLEW = r"""#!/bin/sh
# A stand-in for Gradle (see tests/support/e2e/samples.py): ./gradlew --no-daemon :<module>:<task> [-x test]
set -eu
task=""
for arg in "$@"; do
  case "$arg" in
    :*:*) task="$arg" ;;
  esac
done
module=$(echo "$task" | cut -d: -f2)
what=$(echo "$task" | cut -d: -f3)
[ -d "$module" ] || { echo "gradlew: project ':$module' not found" >&2; exit 1; }
# Gradle's user home (its caches): a line per run, so a build shows what earlier builds left there
gradle_home="${GRADLE_USER_HOME:-$HOME/.gradle}"
mkdir -p "$gradle_home/caches"
echo "gradle user home $gradle_home: $(cat "$gradle_home/caches/enadu-runs.txt" 2>/dev/null | wc -l) earlier runs"
echo ":$module:$what" >> "$gradle_home/caches/enadu-runs.txt"
case "$what" in
  test)
    out="$module/build/test-results/test"
    mkdir -p "$out"
    total=0; failed=0; cases=""
    for t in "$module"/src/test/*.test; do
      [ -e "$t" ] || continue
      name=$(basename "$t" .test)
      total=$((total + 1))
      if [ "$(cat "$t")" = "pass" ]; then
        cases="$cases<testcase classname=\"enadu.$module.$name\" name=\"$name\" time=\"0.01\"/>"
      else
        failed=$((failed + 1))
        cases="$cases<testcase classname=\"enadu.$module.$name\" name=\"$name\" time=\"0.01\"><failure message=\"expected pass\">$name failed</failure></testcase>"
      fi
    done
    printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="enadu.%s" tests="%s" failures="%s" errors="0" skipped="0">%s</testsuite>\n' \
      "$module" "$total" "$failed" "$cases" > "$out/TEST-enadu.$module.xml"
    echo "$total tests completed, $failed failed"
    [ "$failed" -eq 0 ] || { echo "FAILURE: Build failed with an exception." >&2; exit 1; }
    ;;
  bootJar)
    mkdir -p "$module/build/libs"
    find "$module/src" -type f | sort | xargs cat > "$module/build/libs/app.jar"
    echo "BUILD SUCCESSFUL"
    ;;
  *) echo "gradlew: task '$what' not found in project ':$module'" >&2; exit 1 ;;
esac
"""


def dockerfile(copy: str, kind: Optional[str] = None) -> str:
    label = f'LABEL io.enadu.test.kind="{kind}"\n' if kind else ""
    return f"FROM scratch\n{copy}\n{label}"


def enadu_repo() -> Dict[str, str]:
    files = {
        "gradlew": GRADLEW,
        "settings.gradle": "include 'backend', 'batch', 'common'\n",
        "common/src/main/Util.java": "class Util {}\n",
        "README.md": "Enadu knowledge management\n",
    }
    for module in ("backend", "batch"):
        files[f"{module}/src/main/App.java"] = f"class {module.title()}App {{}}\n"
        files[f"{module}/Dockerfile"] = dockerfile("COPY build/libs/app.jar /app.jar")
    files["backend/src/test/ApiTest.test"] = "pass\n"
    files["backend/src/test/SearchTest.test"] = "pass\n"
    return files


FRONTEND_PACKAGE = """{
  "name": "enadu-frontend",
  "version": "1.0.0",
  "private": true,
  "scripts": {
    "build": "node build.js",
    "test": "node -e \\"process.exit(0)\\""
  }
}
"""

FRONTEND_LOCK = """{
  "name": "enadu-frontend",
  "version": "1.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "enadu-frontend",
      "version": "1.0.0"
    }
  }
}
"""

FRONTEND_BUILD = """const fs = require('fs');
fs.mkdirSync('dist', { recursive: true });
const app = fs.readFileSync('src/app.js', 'utf8');
fs.writeFileSync('dist/index.html', '<!doctype html><title>Enadu</title><script>' + app + '</script>\\n');
console.log('built dist/index.html');
"""


def frontend_repo() -> Dict[str, str]:
    return {
        "package.json": FRONTEND_PACKAGE,
        "package-lock.json": FRONTEND_LOCK,
        "build.js": FRONTEND_BUILD,
        "src/app.js": "console.log('enadu');\n",
        "Dockerfile": dockerfile("COPY dist /usr/share/nginx/html"),
    }
