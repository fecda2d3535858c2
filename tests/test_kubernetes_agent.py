"""The agent as a configuration choice (issue 15): `any`, a label, or pods of the Jenkins Kubernetes plugin.

The kubernetes choice renders `agent { kubernetes { yaml ...; defaultContainer 'helper'; retries N } }` with
the pod spec built in Python (enadu_pipelines/agentpod.py) and embedded as a Groovy string, and the agents'
namespace manifests (resources/enadu/k8s/agents/<namespace>.yaml). These tests load, render, compile, lint
and validate them (kubernetes-validate with the real OpenAPI schemas); tests/test_pipeline_kubernetes.py
runs the rendered pipelines in the harness.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, groovy_compile, run_groovy, seed_bundle
from test_groovy import HOSTILE, lint

from enadu_pipelines import agentpod, config, escaping, yamlsource
from enadu_pipelines.cli import main
from enadu_pipelines.errors import ConfigError

KUBE_VERSION = "1.31.0"  # the version tests/test_manifests.py validates the service manifests for
VALIDATE = [sys.executable, "-m", "kubernetes_validate", "--strict", "--kubernetes-version", KUBE_VERSION]
DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGES = {
    "gradle": f"docker.io/library/eclipse-temurin@{DIGEST}",
    "node": f"docker.io/library/node@{DIGEST}",
    "builder": f"quay.io/buildah/stable@{DIGEST}",
    "helper": f"docker.io/library/python@{DIGEST}",
}
SERVICES = ["backend", "batch", "frontend"]


def shipped() -> dict:
    return yaml.safe_load((REPO / "enadu.yaml").read_text())


def with_kubernetes(**agent) -> dict:
    """The shipped enadu.yaml with every service on a kubernetes agent (and so built with buildah)."""
    data = shipped()
    data["registry"]["builder"] = "buildah"
    data["jenkins"]["agent"] = {"kubernetes": {"namespace": "jenkins-agents", "images": dict(IMAGES), **agent}}
    return data


def write(tmp_path: Path, data: dict, name: str = "enadu.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def render(runner, tmp_path: Path, data: dict, out: str = "out") -> Path:
    target = tmp_path / out
    seed_bundle(target)
    result = runner.invoke(main, ["render", "--config", str(write(tmp_path, data, f"{out}.yaml")), "--out", str(target)])
    assert result.exit_code == 0, result.output
    return target


def load_error(tmp_path: Path, data: dict) -> str:
    with pytest.raises(ConfigError) as e:
        config.load(write(tmp_path, data))
    return str(e.value)


def groovy_literals(text: str) -> list[str]:
    """The triple-single-quoted literals of a Jenkinsfile, unescaped as Groovy reads them (the renderer
    writes only \\\\, \\' and \\uXXXX escapes in them, after a line continuation)."""
    out = []
    for raw in re.findall(r"'''\\\n(.*?)(?<!\\)'''", text, re.S):
        out.append(re.sub(r"\\(u[0-9a-f]{4}|.)", lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1).startswith("u")
                          else m.group(1), raw))
    return out


# ------------------------------------------------------------------------------------------------
# Configuration


def test_no_agent_key_any_and_label_forms_render_as_before(tmp_path: Path, runner) -> None:
    """No agent key renders the committed files byte for byte; 'any' is the same; {label: x} is the bare label."""
    committed = {p.relative_to(REPO): p.read_bytes() for p in REPO.glob("pipelines/*/Jenkinsfile*")}
    data = shipped()
    data["jenkins"]["agent"] = "any"
    out = render(runner, tmp_path, data, "any")
    assert {p.relative_to(out): p.read_bytes() for p in out.glob("pipelines/*/Jenkinsfile*")} == {
        k: v.replace(b"from enadu.yaml", b"from any.yaml") for k, v in committed.items()}
    assert not (out / "resources/enadu/k8s/agents").exists()
    bare, mapping = shipped(), shipped()
    bare["jenkins"]["agent"] = "linux-docker"
    mapping["jenkins"]["agent"] = {"label": "linux-docker"}
    a, b = render(runner, tmp_path, bare, "a"), render(runner, tmp_path, mapping, "b")
    for name in SERVICES:
        text = (a / "pipelines" / name / "Jenkinsfile").read_text()
        assert "    agent {\n        label 'linux-docker'\n    }\n" in text
        assert text.replace("a.yaml", "b.yaml") == (b / "pipelines" / name / "Jenkinsfile").read_text()


@pytest.mark.parametrize("image, problem", [
    ("python:3.12", "not an image pinned by digest"),
    (f"python:3.12@{DIGEST}", "not an image pinned by digest"),  # no tag: the digest alone says what runs
    ("python@sha256:abc", "not an image pinned by digest"),
    (f"Python@{DIGEST}", "not an image pinned by digest"),
    (f"python@{DIGEST.upper()}", "not an image pinned by digest"),
    (f"registry.example.com:99999/python@{DIGEST}", "a port is a number from 1 to 65535"),
    (f"-python@{DIGEST}", "not an image pinned by digest"),
    (f"python@{DIGEST}; id", "not an image pinned by digest"),
])
def test_images_must_be_pinned_by_digest(tmp_path: Path, image: str, problem: str) -> None:
    data = with_kubernetes()
    data["jenkins"]["agent"]["kubernetes"]["images"]["helper"] = image
    message = load_error(tmp_path, data)
    assert re.search(r"enadu\.yaml:\d+: jenkins\.agent\.kubernetes\.images\.helper: ", message), message
    assert problem in message


def test_a_registry_with_a_port_is_a_pinned_image(tmp_path: Path) -> None:
    data = with_kubernetes()
    data["jenkins"]["agent"]["kubernetes"]["images"]["helper"] = f"registry.example.com:5000/tools/python@{DIGEST}"
    project = config.load(write(tmp_path, data))
    assert project.services[0].agent.kubernetes.images.helper.startswith("registry.example.com:5000/")


def test_kubernetes_agent_rules(tmp_path: Path) -> None:
    data = with_kubernetes()
    del data["jenkins"]["agent"]["kubernetes"]["images"]["node"]
    assert "services.frontend" not in load_error(tmp_path, data)  # reported at the agent that lacks it
    assert "jenkins.agent.kubernetes.images: service frontend runs in agent pods and needs images.node" \
        in load_error(tmp_path, data)

    data = with_kubernetes()
    data["registry"]["builder"] = "docker"
    message = load_error(tmp_path, data)
    assert "registry.builder: service backend runs in agent pods, which have no Docker daemon nor socket" in message

    data = with_kubernetes(cache={"trusted": "shared", "untrusted": "shared"})
    assert "jenkins.agent.kubernetes.cache.untrusted: 'shared' is also the trusted builds' cache" \
        in load_error(tmp_path, data)

    data = shipped()
    data["jenkins"]["agent"] = {"label": "x", "kubernetes": {"namespace": "a"}}
    assert "jenkins.agent: give either label or kubernetes" in load_error(tmp_path, data)

    data = with_kubernetes()
    data["services"]["frontend"]["agent"] = {"kubernetes": {"namespace": "jenkins-agents", "images": IMAGES,
                                                            "cache": {"size": "5Gi"}}}
    assert "namespace 'jenkins-agents' gets its agents' ServiceAccount, RBAC and cache PVCs from jenkins.agent too" \
        in load_error(tmp_path, data)

    data = with_kubernetes(retries=0)
    assert "jenkins.agent.kubernetes.retries: " in load_error(tmp_path, data)
    data = with_kubernetes(bogus=1)
    assert "jenkins.agent.kubernetes.bogus: unknown key" in load_error(tmp_path, data)


def test_a_service_can_override_the_agent(tmp_path: Path, runner) -> None:
    data = with_kubernetes()
    data["services"]["frontend"]["agent"] = "any"
    data["services"]["batch"]["agent"] = {"label": "batch-runners"}
    out = render(runner, tmp_path, data)
    assert "agent any\n" in (out / "pipelines/frontend/Jenkinsfile").read_text()
    assert "label 'batch-runners'" in (out / "pipelines/batch/Jenkinsfile").read_text()
    backend = (out / "pipelines/backend/Jenkinsfile").read_text()
    assert "        kubernetes {\n            namespace 'jenkins-agents'\n            yaml enaduPod\n" \
           "            defaultContainer 'helper'\n            retries 2\n        }\n" in backend
    # the PVC's annotation lists only the services whose pods mount it
    pvc = [d for d in yaml.safe_load_all((out / "resources/enadu/k8s/agents/jenkins-agents.yaml").read_text())
           if d["kind"] == "PersistentVolumeClaim"]
    assert [p["metadata"]["annotations"]["enadu.dev/services"] for p in pvc] == ["backend"]


# ------------------------------------------------------------------------------------------------
# Rendering


@pytest.fixture(scope="module")
def k8s_render(tmp_path_factory) -> Path:
    from click.testing import CliRunner

    tmp_path = tmp_path_factory.mktemp("k8s")
    return render(CliRunner(), tmp_path, with_kubernetes(cache={"untrusted": "enadu-build-cache-untrusted",
                                                                "storage_class": "nfs-client"}))


def test_the_jenkinsfile_embeds_the_pod_built_in_python(k8s_render: Path) -> None:
    project = config.load(k8s_render.parent / "out.yaml")
    for service in project.services:
        text = (k8s_render / "pipelines" / service.name / "Jenkinsfile").read_text()
        trusted, untrusted = groovy_literals(text)
        assert yaml.safe_load(trusted) == agentpod.pod(service, trusted=True)
        assert yaml.safe_load(untrusted) == agentpod.pod(service, trusted=False)
        assert f"\nenaduTrustedBuild = env.CHANGE_ID == null && (env.BRANCH_NAME == null ||" \
               f" env.BRANCH_NAME == '{service.branch}')\nenaduPod = enaduTrustedBuild ? '''" in text
        claims = [v.get("persistentVolumeClaim", {}).get("claimName") for v in yaml.safe_load(trusted)["spec"]["volumes"]]
        assert "enadu-build-cache" in claims and "enadu-build-cache-untrusted" not in claims
        claims = [v.get("persistentVolumeClaim", {}).get("claimName") for v in yaml.safe_load(untrusted)["spec"]["volumes"]]
        assert "enadu-build-cache-untrusted" in claims and "enadu-build-cache" not in claims
        # stages in their containers: checkout in jnlp, tests and build in build, the image in builder
        steps = re.findall(r"container\('(\w+)'\) \{\n\s+(enadu\w+)\(", text)
        expected = [("jnlp", "enaduCheckout")] + ([("build", "enaduTest")] if service.test_enabled else []) + \
            [("build", "enaduBuild"), ("builder", "enaduImage")]
        assert steps == expected
        [ops] = groovy_literals((k8s_render / "pipelines" / service.name / "Jenkinsfile.ops").read_text())
        assert [c["name"] for c in yaml.safe_load(ops)["spec"]["containers"]] == ["helper"]


def test_pods_containers_and_caches(k8s_render: Path) -> None:
    project = config.load(k8s_render.parent / "out.yaml")
    by_name = {s.name: s for s in project.services}
    backend = agentpod.pod(by_name["backend"], trusted=True)["spec"]
    frontend = agentpod.pod(by_name["frontend"], trusted=True)["spec"]
    containers = {c["name"]: c for c in backend["containers"]}
    assert list(containers) == ["helper", "build", "builder"]
    assert containers["build"]["image"] == IMAGES["gradle"]
    assert {"name": "GRADLE_USER_HOME", "value": "/home/jenkins/cache/gradle"} in containers["build"]["env"]
    assert {c["name"]: c["image"] for c in frontend["containers"]}["build"] == IMAGES["node"]
    assert {"name": "npm_config_cache", "value": "/home/jenkins/cache/npm"} in frontend["containers"][1]["env"]
    # only the build container mounts the cache
    assert [c["name"] for c in backend["containers"] if any(m["name"] == "cache" for m in c["volumeMounts"])] == ["build"]
    # the builder: unprivileged, no Docker socket, only SETUID/SETGID for newuidmap/newgidmap
    builder = containers["builder"]
    assert builder["securityContext"]["privileged"] is False
    assert builder["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SETUID", "SETGID"]}
    assert builder["securityContext"]["runAsNonRoot"] is True
    assert {"name": "STORAGE_DRIVER", "value": "vfs"} in builder["env"]
    assert not any("docker.sock" in str(v) or "hostPath" in v for v in backend["volumes"])
    assert backend["automountServiceAccountToken"] is False
    assert backend["serviceAccountName"] == "enadu-agent"
    # resources: the defaults, or what enadu.yaml says
    assert containers["build"]["resources"] == agentpod.DEFAULT_RESOURCES["build"]
    data = with_kubernetes(resources={"build": {"requests": {"cpu": "2"}, "limits": {"memory": "6Gi"}}})
    service = config.load_located(yamlsource.load(yaml.safe_dump(data)), "x.yaml").services[0]
    assert agentpod.pod(service, trusted=True)["spec"]["containers"][1]["resources"] == {
        "requests": {"cpu": "2"}, "limits": {"memory": "6Gi"}}


def validate(paths: list[Path]) -> subprocess.CompletedProcess:
    return subprocess.run([*VALIDATE, *map(str, paths)], capture_output=True, text=True, timeout=300)


def test_pods_and_agent_manifests_validate_strictly(k8s_render: Path, tmp_path: Path) -> None:
    """Every pod a Jenkinsfile names (trusted, untrusted, operations), and the agents' namespace manifests,
    are valid for Kubernetes 1.31. The plugin names the pod itself (PodTemplateBuilder.build sets
    metadata.name to the agent's pod name), so the copy validated here gets a name."""
    paths = []
    for service in SERVICES:
        for kind in ("Jenkinsfile", "Jenkinsfile.ops"):
            for i, text in enumerate(groovy_literals((k8s_render / "pipelines" / service / kind).read_text())):
                pod = yaml.safe_load(text)
                pod["metadata"]["name"] = f"{service}-{i}"
                path = tmp_path / f"{service}-{kind}-{i}.yaml"
                path.write_text(yaml.safe_dump(pod))
                paths.append(path)
    agents = k8s_render / "resources/enadu/k8s/agents/jenkins-agents.yaml"
    paths.append(agents)
    assert len(paths) == 3 * 3 + 1
    result = validate(paths)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(agents.read_text())]
    assert kinds == ["Namespace", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim",
                     "PersistentVolumeClaim"]
    assert result.stdout.count("INFO") == 3 * 3 + len(kinds), result.stdout
    # and the check can fail: a pod with a wrong field is refused
    bad = yaml.safe_load(paths[0].read_text())
    bad["spec"]["containers"][0]["securityContext"]["privileged"] = "no"
    paths[0].write_text(yaml.safe_dump(bad))
    assert validate(paths[:1]).returncode != 0


def test_agents_manifest_is_listed_by_render_check(k8s_render: Path, runner) -> None:
    agents = k8s_render / "resources/enadu/k8s/agents/jenkins-agents.yaml"
    text = agents.read_text()
    assert "Generated by enadu-pipelines" in text
    rbac = list(yaml.safe_load_all(text))
    binding = next(d for d in rbac if d["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "jenkins", "namespace": "jenkins"}]
    role = next(d for d in rbac if d["kind"] == "Role")
    assert {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "delete", "get", "list", "patch",
                                                                     "update", "watch"]} in role["rules"]
    namespace = rbac[0]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    agents.unlink()
    try:
        result = runner.invoke(main, ["render", "--check", "--config", str(k8s_render.parent / "out.yaml"),
                                      "--out", str(k8s_render)])
        assert result.exit_code != 0
        assert "resources/enadu/k8s/agents/jenkins-agents.yaml" in result.output
    finally:
        agents.write_text(text)


def test_casc_declares_the_kubernetes_cloud_only_for_pod_agents(k8s_render: Path, tmp_path: Path, runner) -> None:
    """casc.yaml gains the Kubernetes cloud the pods come from (KubernetesCloud's JCasC attributes: the name, the
    setters setNamespace, setWebSocket, setPodRetention with the Never retention's symbol "never"); without a
    kubernetes agent it is the committed file, with no `jenkins:` key that could clash with the controller's."""
    casc = yaml.safe_load((k8s_render / "jenkins/casc.yaml").read_text())
    assert casc["jenkins"]["clouds"] == [{"kubernetes": {"name": "kubernetes", "namespace": "jenkins-agents",
                                                         "webSocket": True, "podRetention": "never"}}]
    assert casc["unclassified"]["globalLibraries"]["libraries"][0]["name"] == "enadu"
    assert "ServiceAccount jenkins/jenkins" in (k8s_render / "jenkins/casc.yaml").read_text()
    data = shipped()
    data["jenkins"]["agent"] = "any"
    plain = render(runner, tmp_path, data, "plain")
    assert (plain / "jenkins/casc.yaml").read_text() == (REPO / "jenkins/casc.yaml").read_text().replace(
        "from enadu.yaml", "from plain.yaml")
    assert "jenkins" not in yaml.safe_load((plain / "jenkins/casc.yaml").read_text())


def test_kubernetes_jenkinsfiles_compile_and_lint_clean(k8s_render: Path) -> None:
    files = sorted(k8s_render.glob("pipelines/*/Jenkinsfile*"))
    assert len(files) == 6
    result = groovy_compile(files)
    assert result.returncode == 0, result.stdout + result.stderr
    report = lint(files)
    problems = [f"{Path(name).name}:{e['line']}: {e['severity']} {e['rule']}: {e['msg']}"
                for name, entry in report["files"].items() for e in entry.get("errors", [])
                if e["severity"] in ("error", "warning")]
    assert problems == []


def test_multiline_literals_round_trip_through_groovy(tmp_path: Path) -> None:
    """groovy_multiline keeps any text exactly, hostile values included: no interpolation, no early end."""
    values = [v + "\n" for v in HOSTILE if not any(ord(c) < 0x20 and c != "\n" for c in v)]
    values += ["'\n", "''\n", "a'''b\n", "x: '1'\ny: ''\n", "\\\n", "'''\\\n", "$x ${y}\n"]
    script = "[\n" + ",\n".join(escaping.groovy_multiline(v) for v in values) + "\n].each { String s ->\n" \
        "    println(s.getBytes('UTF-8').encodeHex().toString())\n}\n"
    result = run_groovy(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert [bytes.fromhex(line).decode("utf-8") for line in result.stdout.splitlines()] == values
    with pytest.raises(ValueError, match="U\\+0009"):
        escaping.groovy_multiline("a\tb\n")


def test_pod_yaml_is_data_not_template(tmp_path: Path) -> None:
    """Only validated values reach the pod, and they go through a YAML serializer: a hostile free-text
    description cannot reach it, and a label in the pod is exactly the service name."""
    data = with_kubernetes()
    data["services"]["backend"]["description"] = "x''' ${env.SECRET} \\u0027 '\"}"
    project = config.load(write(tmp_path, data))
    pod = agentpod.pod(project.services[0], trusted=True)
    assert "SECRET" not in agentpod.dump(pod)
    assert yaml.safe_load(agentpod.dump(copy.deepcopy(pod))) == pod
