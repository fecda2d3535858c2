"""`enadu-pipelines schema`: a JSON Schema that editors can use, agreeing with the loader."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import yaml
from conftest import REPO

from enadu_pipelines.cli import main


def schema(runner) -> dict:
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_schema_is_valid_and_accepts_the_shipped_file(runner) -> None:
    document = schema(runner)
    jsonschema.Draft202012Validator.check_schema(document)
    jsonschema.validate(yaml.safe_load((REPO / "enadu.yaml").read_text()), document,
                        cls=jsonschema.Draft202012Validator)


def test_schema_rejects_what_the_loader_rejects(runner) -> None:
    document = schema(runner)
    validator = jsonschema.Draft202012Validator(document)
    data = yaml.safe_load((REPO / "enadu.yaml").read_text())
    data["services"]["backend"]["branch"] = "be-dev'; sh 'touch /tmp/x"
    data["services"]["backend"]["brnach"] = "x"
    data["kubernetes"]["replicas"] = "2"
    errors = sorted(".".join(map(str, e.absolute_path)) or e.message for e in validator.iter_errors(data))
    assert errors == ["kubernetes.replicas", "services.backend", "services.backend.branch"]


def test_schema_documents_keys(runner) -> None:
    document = schema(runner)
    service = document["$defs"]["ServiceSection"]["properties"]
    assert "Branch whose pushes build and deploy the service." in service["branch"]["description"]
    # the type's regular expression, its rules as lookaheads (no leading '-', git's rules), anchored
    assert service["branch"]["pattern"] == ("^(?![\\s\\S]*?(?:^-))(?![\\s\\S]*?(?:\\.\\.|//|/\\.|[./]$|\\.lock$))"
                                            "(?:[A-Za-z0-9][A-Za-z0-9._/-]*)$(?!\\n)")


def test_schema_documents_the_migration_opt_in(runner) -> None:
    """Review M4: migrate_from_handmade is per service, a Kubernetes name, off by default."""
    document = schema(runner)
    validator = jsonschema.Draft202012Validator(document)
    key = document["$defs"]["ServiceSection"]["properties"]["migrate_from_handmade"]
    assert "migration Role" in str(key) and key.get("default") is None, key
    data = yaml.safe_load((REPO / "enadu.yaml").read_text())
    assert data["services"]["backend"]["migrate_from_handmade"] == "backend"
    assert all("migrate_from_handmade" not in data["services"][s] for s in ("batch", "frontend"))
    data["services"]["backend"]["migrate_from_handmade"] = "Backend_Old"
    errors = [".".join(map(str, e.absolute_path)) for e in validator.iter_errors(data)]
    assert errors == ["services.backend.migrate_from_handmade"], errors


def test_schema_to_file(tmp_path: Path, runner) -> None:
    result = runner.invoke(main, ["schema", "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 0
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "enadu.yaml"


# --------------------------------------------------------------------------------------------
# Issue 13, finding 17: the schema and the loader agree. Hypothesis writes documents from valid and
# hostile values for every kind of key (names, paths with '..' or a leading '-', ports, text with unsafe
# characters, 2.0 for a whole number, unknown keys) and checks that the loader's model accepts a document
# exactly when the JSON Schema validates it. Rules that relate several keys (config.cross_problems: one
# image for two services, colliding Kubernetes names, ...) are the loader's alone; they are checked on
# documents the schema accepts.

from hypothesis import HealthCheck, assume, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from enadu_pipelines import config, yamlsource  # noqa: E402
from enadu_pipelines.errors import ConfigError  # noqa: E402

HOSTILE_CHARS = list("aZ09._-/*?:@ $;'\"{}\n\t") + ["\x85", "\x00", "\u2028", "\ufffe", "\u202e", "\U0001ffff", "é", "😀"]
hostile = st.text(alphabet=st.sampled_from(HOSTILE_CHARS), max_size=12)


def strings(valid: tuple[str, ...], invalid: tuple[str, ...] = (), parts: str = "") -> tuple:
    """(a strategy of valid values, one of doubtful ones: ``invalid``, hostile text, or with ``parts``
    any string of those characters)."""
    bad = [hostile, *([st.sampled_from(invalid)] if invalid else []),
           *([st.text(alphabet=st.sampled_from(list(parts)), min_size=1, max_size=8)] if parts else [])]
    return st.sampled_from(valid), st.one_of(*bad)


names = strings(("backend", "batch", "frontend", "web-1", "a"),
                ("frontend-preview", "Backend", "-x", "a..b", "x" * 41, "a_b", ""), parts="abz09-")
globs = strings(("backend/**", "common/**", "**", "*.xml", "a/b?c", "x/**/y"),
                ("a/../b", "./a", "a//b", "-q", "a/-q", "x/**.java", "***", "a/.", ""), parts="ab*?.-/")
relpaths = strings((".", "backend", "backend/Dockerfile", ".x", "a/-q"), ("-q", "..", "./x", "a/..", "a//b", "a/", "", "/etc", "/"))
urls = strings(("https://github.com/enadu/enadu.git", "git@github.com:enadu/x.git", "ssh://git@h:22/o/r.git",
                "https://h:65535/o/r", "git@github.com:0rg/x.git"),
               ("https://h:0/o/r", "https://h:65536/o/r", "file:///etc/passwd", "-https://h/x"))
hosts = strings(("registry.example.com", "localhost:5000", "r.example.com:65535", "127.0.0.1"),
                ("registry.example.com:99999", "r.example.com:0", "r.example.com:08080", "-r.example.com",
                 "R.example.com"))
refs = strings(("v1.0.0", "main", "be-dev", "release/1.x"),
               ("refs/tags/v1", "origin/main", "feature..x", "x.lock", "-v1", "a/.b", "a/"))
texts = strings(("Enadu backend", "-- beta --", "café ☕", "{x} 'q' \"d\" $y"),
                ("a\u2028b", "x\x85y", "\ufffe", "tab\there", "😀" * 201))
queries = strings(("sum(rate(x[{window}]))", "max(up)", "{service}"), ("up{job=\"{job}\"}", "  ", "up\n"))
whole = (st.integers(1, 5), st.sampled_from([2.0, 2.5, True, "2", None, 1e20, 0, -1, 1000]))
ids = strings(("reg", "kube", "hook", "a.b_c-1"), ("my id", "-x", ""))
images = strings(("enadu/a", "enadu/b", "x/y-z", "enadu/a"), ("Enadu/X", "-x", "a//b", "enadu/x:tag"))
http_urls = strings(("https://grafana.example.com", "http://127.0.0.1:3000", "https://p.example.com:9090/api"),
                    ("https://g.example.com:70000", "https://u:p@g.example.com", "https://g.example.com/?q=1",
                     "ftp://g.example.com", "-https://g"))
labels = strings(("default", "enadu", "web-1", "a1"), ("Default", "-x", "a_b", "x" * 64, "a-"), parts="az09-")
commands = strings(("npm ci", "./gradlew build -x test", "make KEY=v"), ("-rf x", "a; b", "a | b", "$(id)", "a\tb"))
durations = strings(("30s", "10m", "1h"), ("30", "1d", "-1s", "30 s", "1234567s"))
quantities = strings(("250m", "1", "512Mi", "1.5Gi"), ("1GB", "-1", "m", ".5"))
role_ids = strings(("12345678901234567",), ("123", "x" * 17, "-12345678901234567"))
kinds = (st.sampled_from(["gradle", "node"]), st.sampled_from(["rust", "", 1]))
versions = (st.just(1), st.sampled_from([1.0, 2, "1", True]))
PINNED = "docker.io/library/python@sha256:" + "0a" * 32
agents = (st.sampled_from(["any", "linux", {"label": "linux"}, {"label": "x", "kubernetes": {"namespace": "ns"}},
                           {"kubernetes": {"namespace": "ns", "retries": 3, "images": {"helper": PINNED}}},
                           {"kubernetes": {"namespace": "ns", "cache": {"untrusted": "pr", "size": "1Gi"}}}]),
          st.sampled_from(["-x", "a b", {"label": "-x"}, {"kubernetes": {}}, {"kubernetes": {"namespace": "ns", "retries": 9}},
                           {"kubernetes": {"namespace": "ns", "images": {"helper": "python:3.12"}}},
                           {"kubernetes": {"namespace": "ns", "images": {"helper": PINNED.replace("0a", "0A")}}},
                           {"kubernetes": {"namespace": "ns", "cache": {"access_mode": "ReadOnlyMany"}}}, {"lable": "x"}]))
agents = tuple(a.map(copy.deepcopy) for a in agents)  # no shared mappings: YAML would write them as aliases
KINDS_OF_VALUE = ["name", "glob", "relpath", "url", "host", "ref", "text", "query", "whole", "id", "image", "kind",
                  "version", "unknown key", "no paths", "http", "label", "command", "duration", "quantity", "role", "agent"]


@st.composite
def documents(draw) -> dict:
    """A document that is valid but for up to two kinds of value, which may then be doubtful anywhere."""
    doubtful = draw(st.sets(st.sampled_from(KINDS_OF_VALUE), max_size=2))

    def v(kind: str, pair: tuple) -> object:
        return draw(pair[1] if kind in doubtful and draw(st.booleans()) else pair[0])

    def maybe(mapping: dict, key: str, kind: str, pair: tuple) -> None:
        if draw(st.booleans()):
            mapping[key] = v(kind, pair)

    doc: dict = {
        "version": v("version", versions),
        "library": {"version": v("ref", refs), "repository": v("url", urls)},
        "registry": {"host": v("host", hosts), "credentials_id": v("id", ids)},
        "kubernetes": {"credentials_id": v("id", ids)},
        "discord": {"credentials_id": v("id", ids)},
        "services": {},
    }
    maybe(doc["kubernetes"], "replicas", "whole", whole)
    maybe(doc["kubernetes"], "namespace", "label", labels)
    maybe(doc["kubernetes"], "scale_down_delay", "duration", durations)
    maybe(doc["kubernetes"], "scale_down_delay_floor", "duration", durations)
    maybe(doc["discord"], "timeout_seconds", "whole", whole)
    maybe(doc["discord"], "mention_role_on_failure", "role", role_ids)
    if draw(st.booleans()):
        doc["monitoring"] = {"prometheus_url": v("http", http_urls)}
        if draw(st.booleans()):
            doc["monitoring"]["grafana"] = {"url": v("http", http_urls), "credentials_id": v("id", ids)}
    if draw(st.booleans()):
        doc["credential_hosts"] = {v("id", ids): v("host", hosts)}
    if draw(st.booleans()):
        doc["jenkins"] = {"agent": v("agent", agents)}
    for _ in range(draw(st.integers(1, 3))):
        s = {"kind": v("kind", kinds), "repository": v("url", urls), "branch": v("ref", refs),
             "paths": [v("glob", globs) for _ in range(draw(st.integers(0 if "no paths" in doubtful else 1, 3)))],
             "image": {"name": v("image", images)}}
        maybe(s, "description", "text", texts)
        maybe(s, "agent", "agent", agents)
        maybe(s, "module", "label", labels)
        if draw(st.booleans()):
            s["build"] = {"commands": [v("command", commands) for _ in range(draw(st.integers(1, 2)))]}
        maybe(s["image"], "context", "relpath", relpaths)
        maybe(s["image"], "dockerfile", "relpath", relpaths)
        if draw(st.booleans()):
            s["kubernetes"] = {"replicas": v("whole", whole),
                               "resources": {"limits": {"cpu": v("quantity", quantities)}}}
        if draw(st.booleans()):
            s["test"] = {"junit": v("glob", globs)}
        if draw(st.booleans()):
            s["monitoring"] = {"analysis": {"latency_query": v("query", queries)}}
        doc["services"][v("name", names)] = s
    if "unknown key" in doubtful:
        sections = [doc, doc["library"], doc["kubernetes"], *doc["services"].values()]
        draw(st.sampled_from(sections))[draw(st.sampled_from(["bogus", "brnach", "paths_"]))] = 1
    return doc


SCHEMA = jsonschema.Draft202012Validator(config.json_schema())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(documents())
def test_schema_and_loader_agree(document: dict) -> None:
    text = yaml.dump(document, Dumper=yaml.CSafeDumper, allow_unicode=True, sort_keys=False)
    assume(yaml.load(text, Loader=yaml.CSafeLoader) == document)  # what YAML cannot carry is not the schema's business
    schema_ok = SCHEMA.is_valid(document)
    event("the schema accepts" if schema_ok else "the schema refuses")
    try:
        located = yamlsource.load(text)
        model = config.EnaduConfig.model_validate(located.data)
    except (yamlsource.YamlSourceError, ValidationError):
        model = None
    assert (model is not None) == schema_ok, (sorted(e.message for e in SCHEMA.iter_errors(document))[:3], text)
    # The whole loader accepts what the schema accepts but what the cross-key rules refuse; anything but
    # a ConfigError (a traceback) fails here.
    if model is None:
        return
    try:
        config.load_located(located, "doc.yaml")
        loaded = True
    except ConfigError:
        loaded = False
    assert loaded == (not config.cross_problems(model))
