"""The end-to-end world: a whole Enadu release on loopback, with real parts wherever they exist here.

Real: git (bare repositories behind github.com URLs, :mod:`.gitserver`), the library as released
(``enadu-pipelines render`` of an enadu.yaml into a repository, committed, pushed and tagged),
``enadu-pipelines bootstrap`` (python-jenkins against the fake Jenkins, which keeps the jobs'
config.xml and the queue), processes and signals (``sh`` steps run by the live pipeline harness and
:mod:`.executor`), the bundled helper, Debian's ``docker-registry`` and ``buildah``, ``npm``, and time.
Doubles: the Kubernetes test world (tests/support/kubeworld; its kubelet pulls images from the real
registry), the fake Discord, the fake Jenkins REST face, and the controller around the harness
(:mod:`.controller`), each citing the class it follows.

A scenario reads like the team's day::

    world = E2EWorld(tmp_path).start()
    world.bootstrap()                       # jobs + registration builds
    world.controller.wait_idle()
    event = world.enadu.commit({...}, "change batch") and world.enadu.push("be-dev")
    world.controller.push(event)            # GitHub's webhook
    world.controller.wait_idle()
    world.service_image("batch"), world.discord.messages, ...
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from enadu_pipelines import config as configmod
from enadu_pipelines import bundle, generate
from enadu_pipelines.helper import retry
from enadu_pipelines.jenkins import bootstrap as bootstrapmod
from support.fakediscord.server import FakeDiscord
from support.fakejenkins import FakeJenkins, User
from support.kubeworld.world import KubeWorld
from support.ociregistry import OciRegistry, buildah_env

from . import samples
from .controller import Controller
from .executor import Executor
from .gitserver import GitServer
from .pods import KubernetesCloud

REPO = Path(__file__).resolve().parents[3]
BUNDLE = REPO / "resources" / "enadu" / "enadu-helper.pyz"
LIBRARY = "enadu/enadu-pipelines"
NAMESPACE = "enadu"
JENKINS_TOKEN = "e2e-jenkins-api-token-7d1f"
FOLDER = "enadu"
AGENTS_NAMESPACE = "jenkins-agents"
_DIGEST = "@sha256:" + "0123456789abcdef" * 4
# Agent images as enadu.yaml must name them (pinned by digest); the test world runs no image (pods.py).
AGENT_IMAGES = {"gradle": "docker.io/library/eclipse-temurin" + _DIGEST, "node": "docker.io/library/node" + _DIGEST,
                "builder": "quay.io/buildah/stable" + _DIGEST, "helper": "docker.io/library/python" + _DIGEST}


class E2EWorld:
    def __init__(self, root: Path, *, scale_down_delay: str = "2s", deploy_timeout: str = "3m",
                 timeout_minutes: int = 60, remote_timeout: Optional[float] = None,
                 time_scale: float = 1.0, agent: str = "any", connect_timeout: float = 30.0) -> None:
        self.root = root
        self.scale_down_delay = scale_down_delay
        self.deploy_timeout = deploy_timeout
        self.timeout_minutes = timeout_minutes
        self.remote_timeout = remote_timeout
        self.time_scale = time_scale
        self.agent = agent  # "any", or "kubernetes": agent pods in the test world (support/e2e/pods.py)
        self.connect_timeout = connect_timeout
        self.cloud: Optional[KubernetesCloud] = None
        self.registry: Optional[OciRegistry] = None
        self.kube: Optional[KubeWorld] = None
        self.discord: Optional[FakeDiscord] = None
        self.fake: Optional[FakeJenkins] = None
        self.controller: Optional[Controller] = None
        self.version = "v0.1.0"

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> "E2EWorld":
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry = OciRegistry(self.root / "registry").start()
        (self.root / "kube").mkdir(exist_ok=True)
        self.kube = KubeWorld(workdir=str(self.root / "kube"), namespaces=("default", NAMESPACE),
                              time_scale=self.time_scale).start()
        self.kube.control.kubelet.use_registry(self.registry.host, self.registry.username, self.registry.password)
        self.discord = FakeDiscord().start()
        self.git = GitServer(self.root / "git")
        for name in ("enadu/enadu", "enadu/enadu-frontend", LIBRARY):
            self.git.create(name)
        dev = self.root / "dev"
        self.enadu = self.git.clone("enadu/enadu", dev / "enadu")
        self.enadu.git("checkout", "-q", "-b", "be-dev")
        self.enadu.commit(samples.enadu_repo(), "Enadu backend, batch and common")
        self.enadu.push("be-dev")
        self.frontend = self.git.clone("enadu/enadu-frontend", dev / "enadu-frontend")
        self.frontend.git("checkout", "-q", "-b", "fe-dev")
        self.frontend.commit(samples.frontend_repo(), "Enadu frontend")
        self.frontend.push("fe-dev")
        self.library = self.git.clone(LIBRARY, dev / "enadu-pipelines")
        self.release(self.version)
        self.fake = FakeJenkins({"admin": User("admin-password", (JENKINS_TOKEN,))}).__enter__()
        home = self.root / "agent" / "home"
        home.mkdir(parents=True, exist_ok=True)
        agent_env = buildah_env(self.root / "agent" / "containers", {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "GIT_CONFIG_GLOBAL": str(self.git.gitconfig), "GIT_CONFIG_NOSYSTEM": "1",
            "npm_config_cache": str(home / ".npm"), "npm_config_update_notifier": "false",
            "npm_config_audit": "false", "npm_config_fund": "false",
        })
        self.executor = Executor(agent_env=agent_env)
        if self.agent == "kubernetes":
            self.cloud = self.kubernetes_cloud(agent_env)
        self.controller = Controller(self.root, self.git, casc_text=self.casc_text(), credentials=self.credentials(),
                                     agent_env=agent_env, fake_jenkins=self.fake, remote_timeout=self.remote_timeout,
                                     executor=self.executor, cloud=self.cloud)
        return self

    def agents_manifest(self) -> Path:
        """resources/enadu/k8s/agents/<namespace>.yaml of the released library."""
        agent = self.project().jenkins.agent.kubernetes
        return self.library.path / "resources" / "enadu" / "k8s" / "agents" / f"{agent.namespace}.yaml"

    def kubernetes_cloud(self, agent_env: Dict[str, str]) -> KubernetesCloud:
        """What an administrator does before the first pod build: apply the rendered agents manifest
        (namespace, the pods' ServiceAccount, the controller's Role and RoleBinding, the cache PVCs) with
        kubectl as a cluster admin, and give the controller's Kubernetes cloud its ServiceAccount's token."""
        assert self.kube is not None
        agent = self.project().jenkins.agent.kubernetes
        applied = self.kube.kubectl("apply", "--server-side=false", "-f", str(self.agents_manifest()))
        assert applied.returncode == 0, applied.stderr
        token = self.kube.service_account_token(agent.controller_service_account, agent.controller_namespace)
        kubeconfig = self.kube.write_kubeconfig(str(self.root / "kube" / "jenkins-controller.kubeconfig"), token=token)
        return KubernetesCloud(self.kube, kubeconfig=kubeconfig, jenkins_url="https://jenkins.enadu.dev/",
                               image_env=agent_env, connect_timeout=self.connect_timeout)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.cleanup()
            self.executor.close()  # what a build left running (a process that ignored SIGTERM)
        for part in (self.discord, self.kube, self.registry):
            if part is not None:
                part.stop()
        if self.fake is not None:
            self.fake.__exit__(None, None, None)

    # -- the library ---------------------------------------------------------------------------

    def config_text(self, version: str) -> str:
        """enadu.yaml as shipped, pointed at this world: the loopback registry (buildah), short delays."""
        data = yaml.safe_load((REPO / "enadu.yaml").read_text("utf-8"))
        data["library"]["version"] = version
        assert self.registry is not None
        data["registry"] = {"host": self.registry.host, "credentials_id": "enadu-registry", "insecure": True,
                            "builder": "buildah"}
        data["jenkins"]["timeout_minutes"] = self.timeout_minutes
        data["kubernetes"].update(scale_down_delay=self.scale_down_delay, scale_down_delay_floor="0s",
                                  abort_scale_down_delay="1s",
                                  deploy_timeout=self.deploy_timeout)
        if self.agent == "kubernetes":
            data["jenkins"]["agent"] = {"kubernetes": {"namespace": AGENTS_NAMESPACE, "images": dict(AGENT_IMAGES)}}
        data["monitoring"] = {"analysis": {"enabled": False}}  # no Prometheus in this world (tests/test_analysis.py)
        return yaml.safe_dump(data, sort_keys=False)

    def release(self, version: str, *, edit: Optional[Dict[str, str]] = None) -> None:
        """What a maintainer does for a release: set library.version, render, commit, tag, push."""
        tree = self.library.path
        (tree / "resources" / "enadu").mkdir(parents=True, exist_ok=True)
        if not (tree / "resources" / "enadu" / "enadu-helper.pyz").exists():
            shutil.copy(BUNDLE, tree / "resources" / "enadu" / "enadu-helper.pyz")  # render reuses a fresh bundle
        (tree / "enadu.yaml").write_text(self.config_text(version), encoding="utf-8")
        current = (tree / "resources" / "enadu" / "enadu-helper.pyz").read_bytes()
        assert bundle.bundled_fingerprint(current) == bundle.fingerprint(), \
            "resources/enadu/enadu-helper.pyz is older than the helper's sources: run enadu-pipelines render"
        generate.generate(tree / "enadu.yaml", tree, write=True)
        for rel, text in (edit or {}).items():
            (tree / rel).write_text(text, encoding="utf-8")
        self.library.commit({}, f"Release {version}")
        self.library.push("main")
        self.library.tag(version)
        self.version = version

    def project(self) -> configmod.Project:
        return configmod.load(self.library.path / "enadu.yaml")

    def casc_text(self) -> str:
        return (self.library.path / "jenkins" / "casc.yaml").read_text("utf-8")

    # -- Jenkins -------------------------------------------------------------------------------------

    def credentials(self) -> Dict[str, Any]:
        assert self.registry is not None and self.kube is not None and self.discord is not None
        return {
            "enadu-github": {"type": "usernamePassword", "username": "enadu-bot", "password": "e2e-github-token-0b5c"},
            "enadu-registry": {"type": "usernamePassword", "username": self.registry.username,
                               "password": self.registry.password},
            "enadu-kubeconfig": {"type": "file", "content": Path(self.kube.kubeconfig).read_text("utf-8")},
            "enadu-discord-webhook": {"type": "string", "secret": self.discord.url},
        }

    def secrets(self) -> Dict[str, str]:
        assert self.registry is not None and self.kube is not None and self.discord is not None
        return {"registry password": self.registry.password, "kube token": self.kube.token,
                "Discord webhook token": self.discord.token, "Jenkins API token": JENKINS_TOKEN,
                "GitHub token": self.credentials()["enadu-github"]["password"]}

    def leaks(self) -> List[str]:
        """Where a secret shows: build logs and answers, Discord payloads, or any file left on the agent
        (workspaces, their @tmp directories, HOME, the image store) or in agent pods' volumes (the cache
        PVCs; emptyDirs of pods still there). Empty when nothing leaked."""
        assert self.controller is not None and self.discord is not None
        secrets = self.secrets()
        found: List[str] = []

        def check(where: str, text: str) -> None:
            found.extend(f"{name} in {where}" for name, value in secrets.items() if value in text)

        for full, state in self.controller.jobs.items():
            for b in state.builds:
                check(f"{full} #{b.number} log", b.text())
                # The trace records each sh's whole environment: that is how withCredentials hands a
                # secret to its process, so it is the one place a secret belongs; the harness's own
                # leak scan (command lines, step arguments, files written, env.X assignments) counts.
                answer = dict(b.answer or {})
                answer["trace"] = [{k: v for k, v in e.items() if k != "env"} for e in answer.get("trace", [])]
                check(f"{full} #{b.number} answer", json.dumps(answer))
                found.extend(f"{full} #{b.number}: {leak}" for leak in (b.answer or {}).get("leaks", []))
        for m in self.discord.messages:
            check("a Discord message", json.dumps(m["payload"]))
        # the agent's files, and the agent pods' volumes (support/kubeworld/volumes.py: kube/kubelet)
        for path in sorted([*(self.root / "agent").rglob("*"), *(self.root / "kube" / "kubelet").rglob("*")]):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 8 * 1024 * 1024:
                check(str(path.relative_to(self.root)), path.read_bytes().decode("latin-1"))
        return found

    def bootstrap(self, **kwargs: Any) -> bootstrapmod.Report:
        """``enadu-pipelines bootstrap`` against the fake Jenkins; the controller then loads the jobs and
        takes what bootstrap queued, and the library registration from the released casc.yaml."""
        assert self.fake is not None and self.controller is not None
        report = bootstrapmod.run(self.project(), url=self.fake.url, user="admin", token=JENKINS_TOKEN,
                                  policy=retry.Policy(backoffs=(0.1, 0.2), deadline=10.0), **kwargs)
        assert report.converged, [i.error for i in report.failed]
        from .library import load_casc

        self.controller.library = load_casc(self.casc_text())
        self.controller.load_jobs(FOLDER)
        return report

    # -- looking at the cluster -----------------------------------------------------------------------

    def service(self, name: str) -> Optional[dict]:
        assert self.kube is not None
        return self.kube.get("Service", name, NAMESPACE)

    def live_colour(self, name: str) -> Optional[str]:
        svc = self.service(name)
        return ((svc or {}).get("spec", {}).get("selector") or {}).get("color")

    def deployment(self, name: str, colour: str) -> Optional[dict]:
        assert self.kube is not None
        return self.kube.get("Deployment", f"{name}-{colour}", NAMESPACE)

    def live_image(self, name: str) -> Optional[str]:
        colour = self.live_colour(name)
        dep = self.deployment(name, colour) if colour else None
        if dep is None:
            return None
        return dep["spec"]["template"]["spec"]["containers"][0]["image"]

    def messages(self, job: str) -> List[Dict[str, Any]]:
        """The Discord embeds posted for ``job`` (its title starts with the job's name)."""
        assert self.discord is not None
        out = []
        for m in self.discord.messages:
            for embed in m["payload"].get("embeds", []):
                if job in embed.get("title", ""):
                    out.append(embed)
        return out


def env_without_ci() -> Dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ENADU_")}
