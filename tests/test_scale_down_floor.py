"""Propagation safety (issue 14, "Capabilities to add"): the scale-down delay has a floor.

After the switch, Service proxies (kube-proxy on every node) keep sending new connections to the old
colour until they see the changed EndpointSlices; a colour stopped before then refuses them. Argo
Rollouts keeps the old ReplicaSet for ``scaleDownDelaySeconds`` (default 30,
utils/defaults/defaults.go ``DefaultScaleDownDelaySeconds``) and documents "A minimum of 30 seconds
is recommended to ensure IP table propagation across the nodes in a cluster"
(pkg/apis/rollouts/v1alpha1/types.go, docs/features/bluegreen.md). Here the floor is enforced: a
shorter delay is raised to it, with a warning at render time (naming the service, the value and the
key) and at deploy time; ``scale_down_delay_floor`` (``--scale-down-delay-floor``) lowers it, and a
deploy whose delay is still below 30 s warns that requests may be lost, in its log and its result.

The world tests count it under load through the Service's data plane (tests/support/kubeworld/load.py)
with a propagation lag longer than the short delay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from enadu_pipelines import config
from enadu_pipelines.cli import main
from enadu_pipelines.helper.cli import build_parser
from enadu_pipelines.helper.deploy import delay_warnings, options
from tests.support import deployrun as d
from tests.support.deployrun import world, ok  # noqa: F401 (world is a fixture)

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
    paths: ["backend/**"]
    image:
      name: enadu/backend
  frontend:
    kind: node
    repository: https://github.com/enadu/enadu-fe.git
    branch: fe-dev
    paths: ["**"]
    image:
      name: enadu/frontend
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "enadu.yaml"
    path.write_text(text)
    return path


def with_backend(tmp_path: Path, *lines: str, top: tuple = ()) -> Path:
    text = BASE.replace("    image:\n      name: enadu/backend\n",
                        "    image:\n      name: enadu/backend\n    kubernetes:\n"
                        + "".join(f"      {line}\n" for line in lines), 1) if lines else BASE
    text = text.replace("  credentials_id: kube\n", "  credentials_id: kube\n" + "".join(f"  {t}\n" for t in top), 1)
    return write(tmp_path, text)


# -- configuration ----------------------------------------------------------------------------


def test_the_default_delay_and_floor_are_30_seconds_and_warn_about_nothing(tmp_path) -> None:
    project = config.load(write(tmp_path, BASE))
    assert {(s.scale_down_delay, s.scale_down_delay_floor) for s in project.services} == {("30s", "30s")}
    assert project.warnings == ()


def test_a_service_below_the_floor_gets_a_warning_naming_it_the_value_and_the_key(tmp_path) -> None:
    path = with_backend(tmp_path, "scale_down_delay: 5s")
    project = config.load(path)
    backend = next(s for s in project.services if s.name == "backend")
    assert (backend.scale_down_delay, backend.scale_down_delay_floor) == ("5s", "30s")
    assert project.warnings == (
        f"{path}:21: services.backend.kubernetes.scale_down_delay: 5s is below the floor of 30s"
        " (kubernetes.scale_down_delay_floor): service backend's deploys keep the old colour 30s,"
        " the time Service proxies may need to see a switch",)


def test_lowering_the_floor_is_allowed_and_warns_that_requests_may_be_lost(tmp_path) -> None:
    path = with_backend(tmp_path, "scale_down_delay: 2s", "scale_down_delay_floor: 0s")
    project = config.load(path)
    backend = next(s for s in project.services if s.name == "backend")
    assert (backend.scale_down_delay, backend.scale_down_delay_floor) == ("2s", "0s")
    assert project.warnings == (
        f"{path}:22: services.backend.kubernetes.scale_down_delay_floor: 0s lets service backend keep the old colour"
        " only 2s after a switch, less than the 30s Service proxies may need to see it: requests they still send"
        " to the old colour will fail",)


def test_a_global_setting_warns_for_each_service_at_its_own_key(tmp_path) -> None:
    path = with_backend(tmp_path, top=("scale_down_delay: 10s",))
    warnings = config.load(path).warnings
    assert [w.split(": ", 2)[:2] for w in warnings] == [[f"{path}:10", "kubernetes.scale_down_delay"]] * 2
    assert "service backend's deploys" in warnings[0] and "service frontend's deploys" in warnings[1]


def test_render_prints_the_warning_and_still_renders(tmp_path, runner) -> None:
    path = with_backend(tmp_path, "scale_down_delay: 5s")
    out = tmp_path / "out"
    result = runner.invoke(main, ["render", "--config", str(path), "--out", str(out), "--check"])
    assert result.exit_code == 1  # --check of an empty directory: everything is missing, not a config error
    assert (f"warning: {path}:21: services.backend.kubernetes.scale_down_delay: 5s is below the floor of 30s"
            in result.stderr)


def test_the_pipelines_pass_the_delay_and_its_floor_to_the_helper(tmp_path) -> None:
    from enadu_pipelines.render import render_files

    files = render_files(config.load(with_backend(tmp_path, "scale_down_delay: 2s", "scale_down_delay_floor: 0s")),
                         b"")
    backend, frontend = (files[f"pipelines/{name}/Jenkinsfile"].decode() for name in ("backend", "frontend"))
    assert "scaleDownDelay: '2s',\n                    scaleDownDelayFloor: '0s'," in backend
    assert "scaleDownDelay: '30s',\n                    scaleDownDelayFloor: '30s'," in frontend
    step = files["vars/enaduDeploy.groovy"].decode()
    assert '"ENADU_SCALE_DOWN_DELAY=${a.scaleDownDelay}", "ENADU_SCALE_DOWN_DELAY_FLOOR=${a.scaleDownDelayFloor}",' in step


def test_the_schema_knows_the_floor() -> None:
    schema = config.json_schema()
    settings = schema["$defs"]["KubernetesSettings"]["properties"]
    assert "scale_down_delay_floor" in settings
    assert "scale_down_delay_floor" in schema["$defs"]["KubernetesSection"]["properties"]


# -- the helper -----------------------------------------------------------------------------


def deploy_options(*argv: str, **env: str):
    args = build_parser().parse_args(["deploy", "--service", "backend", "--image", d.image("v1"),
                                      "--manifest", "m.yaml", *argv])
    return options(args, needs_image=True)


def test_the_helper_raises_a_short_delay_to_the_floor_and_says_so(monkeypatch) -> None:
    monkeypatch.delenv("ENADU_SCALE_DOWN_DELAY_FLOOR", raising=False)
    monkeypatch.delenv("ENADU_SCALE_DOWN_DELAY", raising=False)
    opts = deploy_options("--scale-down-delay", "1s")
    assert (opts.scale_down_delay, opts.requested_scale_down_delay, opts.scale_down_delay_floor) == (30.0, 1.0, 30.0)
    assert delay_warnings(opts) == [
        "--scale-down-delay 1s is below the floor of 30s (--scale-down-delay-floor, "
        "ENADU_SCALE_DOWN_DELAY_FLOOR): keeping the old colour 30s after the switch, the time Service proxies "
        "may need to see it"]
    assert delay_warnings(deploy_options()) == []  # the default 30s


def test_a_lowered_floor_lets_a_short_delay_through_with_a_warning(monkeypatch) -> None:
    monkeypatch.delenv("ENADU_SCALE_DOWN_DELAY_FLOOR", raising=False)
    opts = deploy_options("--scale-down-delay", "1500ms", "--scale-down-delay-floor", "0s")
    assert opts.scale_down_delay == 1.5
    assert delay_warnings(opts) == [
        "keeping the old colour only 1.5s after the switch (--scale-down-delay-floor 0s), less than the"
        " 30s Service proxies may need to see it: requests they still send to the old colour will fail"]
    monkeypatch.setenv("ENADU_SCALE_DOWN_DELAY_FLOOR", "45s")
    assert deploy_options("--scale-down-delay", "40s").scale_down_delay == 45.0


def test_a_bad_floor_is_a_usage_error() -> None:
    from enadu_pipelines.helper.errors import UsageProblem

    with pytest.raises(UsageProblem, match=r"^--scale-down-delay-floor: 'soon' is not a duration"):
        deploy_options("--scale-down-delay-floor", "soon")


# -- under load in the Kubernetes test world ----------------------------------------------------

LAG = 2.5  # seconds before the Service proxies see an EndpointSlice change
LOADED = {"time_scale": 0.1, "propagation_lag": LAG, "seed": 21}
RATE = 40.0


def switch_under_load(world, *args: str, extra_env=None):
    ok(d.deploy(world, "v1"))
    d.wait_serving(world)
    with world.load(world.service_url(d.SERVICE, d.NAMESPACE), concurrency=2, rate=RATE) as load:
        load.wait_for_requests(int(RATE))
        run = d.deploy(world, "v2", *args, extra_env=extra_env)
        load.wait_for_requests(load.summary()["total"] + int(RATE * (LAG + 1)), timeout=LAG + 20)
    return run, load.summary()


@pytest.mark.parametrize("kubeworld", [LOADED], indirect=True)
def test_a_delay_below_the_propagation_lag_loses_requests_and_the_deploy_says_so(world) -> None:
    run, summary = switch_under_load(world, "--scale-down-delay", "1s", "--scale-down-delay-floor", "0s")
    result = ok(run)
    assert summary["failed"] > 0, summary  # the old colour stopped while proxies still sent it requests
    lost = ("keeping the old colour only 1s after the switch (--scale-down-delay-floor 0s), less than the 30s"
            " Service proxies may need to see it: requests they still send to the old colour will fail")
    assert f"warning: {lost}" in run.stderr
    assert result["outcome"] == "deployed" and result["warnings"] == [lost]
    assert result["message"].endswith(f"; warning: {lost}")


@pytest.mark.parametrize("kubeworld", [LOADED], indirect=True)
def test_at_the_default_floor_no_request_is_lost(world) -> None:
    # The fixtures lower the floor for speed (deployrun.env); this deploy runs with the real default.
    run, summary = switch_under_load(world, "--scale-down-delay", "1s",
                                     extra_env={"ENADU_SCALE_DOWN_DELAY_FLOOR": None})
    result = ok(run)
    assert summary["failed"] == 0 and summary["total"] > RATE * 30, summary
    assert "is below the floor of 30s" in run.stderr and "requests they still send" not in run.stderr
    assert result["warnings"] == [
        "--scale-down-delay 1s is below the floor of 30s (--scale-down-delay-floor, ENADU_SCALE_DOWN_DELAY_FLOOR):"
        " keeping the old colour 30s after the switch, the time Service proxies may need to see it"]
    assert result["message"] == f"{d.image('v2')} is live in green (was blue)"
