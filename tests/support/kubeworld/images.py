"""Image naming conventions: what a container "does" is read from its image reference.

A token anywhere in the reference, delimited by `/ : @ . _ -` or the ends, selects a behaviour
(case-insensitive), so `registry.example/shop/web:2.1-crashloop` and `crashloop/web:1` both crash:

| token               | behaviour                                                                   |
|---------------------|-----------------------------------------------------------------------------|
| (none)              | listens `app_start` s after the container starts, answers 200, ready        |
| `crashloop`         | exits with code 1 after `crash_after` s without ever listening              |
| `errimagepull`, `pullfail`, `nosuchimage` | the pull fails: ErrImagePull, then ImagePullBackOff    |
| `configerror`       | CreateContainerConfigError (as a missing ConfigMap/Secret key would cause)  |
| `neverready`        | listens but answers 503 to everything, so readiness probes never pass       |
| `slow<N>` / `slow<N>s` | starts listening N seconds (decimals allowed) after the container starts |
| `ignoresigterm`     | keeps serving after SIGTERM until the kubelet's SIGKILL at the grace period |
| `exit0`             | runs `crash_after` s, then exits 0 (a Completed container, restarted)       |
| `errors`            | passes its probes (kube-probe answers 200) but answers 500 to all other traffic: |
|                     | a release that is "ready" yet broken, which only its metrics reveal         |
| `answers<NNN>`      | passes its probes but answers HTTP NNN (e.g. `answers404`, `answers401`) to |
|                     | all other traffic: an app whose smoke path is missing or behind its own auth |
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = r"(?:^|(?<=[/:@._-]))({})(?=$|[/:@._-])"


def _has(image: str, word: str) -> bool:
    return re.search(_TOKEN.format(word), image, re.IGNORECASE) is not None


@dataclass(frozen=True)
class Behaviour:
    crash: bool = False
    exit_code: int = 1
    pull_fails: bool = False
    config_error: bool = False
    never_ready: bool = False
    start_delay: float = 0.0  # seconds beyond the world's app_start
    ignores_sigterm: bool = False
    serves_errors: bool = False
    answers: int = 0  # `answers<NNN>`: the status every non-probe request gets (0: the usual 200)


def behaviour(image: str) -> Behaviour:
    slow = re.search(_TOKEN.format(r"slow(\d+(?:\.\d+)?)s?"), image, re.IGNORECASE)
    answers = re.search(_TOKEN.format(r"answers([1-5]\d\d)"), image, re.IGNORECASE)
    return Behaviour(
        crash=_has(image, "crashloop") or _has(image, "exit0"),
        exit_code=0 if _has(image, "exit0") else 1,
        pull_fails=any(_has(image, w) for w in ("errimagepull", "pullfail", "nosuchimage")),
        config_error=_has(image, "configerror"),
        never_ready=_has(image, "neverready"),
        start_delay=float(slow.group(2)) if slow else 0.0,
        ignores_sigterm=_has(image, "ignoresigterm"),
        serves_errors=_has(image, "errors"),
        answers=int(answers.group(2)) if answers else 0,
    )
