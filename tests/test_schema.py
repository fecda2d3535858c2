"""`enadu-pipelines schema`: a JSON Schema that editors can use, agreeing with the loader."""

from __future__ import annotations

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
    assert service["branch"]["pattern"] == "^(?:[A-Za-z0-9][A-Za-z0-9._/-]*)$"


def test_schema_to_file(tmp_path: Path, runner) -> None:
    result = runner.invoke(main, ["schema", "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 0
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "enadu.yaml"
