"""Metadata of the shared library's ``vars/`` steps.

One description per step feeds both ``vars/<step>.groovy`` (its argument checks) and
``vars/<step>.txt`` (its help page in Jenkins' Pipeline Syntax), so the two cannot drift apart.
The step bodies live in ``templates/vars/<step>.groovy.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .helper import imageref


def _helper_commands() -> tuple[str, ...]:
    from .helper.cli import COMMANDS

    return tuple(COMMANDS)


# Groovy classes an argument may have. ``String`` accepts any CharSequence (GStrings included).
TYPES = {"String": "CharSequence", "List": "List", "Boolean": "Boolean", "Integer": "Integer"}

SERVICE_PATTERN = r"[a-z]([a-z0-9-]{0,38}[a-z0-9])?"
DURATION_PATTERN = r"[0-9]{1,6}(s|m|h)"
CREDENTIALS_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
# the "simple command" of enadu.yaml (configtypes.Command): words, no quotes or shell operators
COMMAND_PATTERN = r"[A-Za-z0-9_./:=@%+,-][A-Za-z0-9_./:=@%+, -]{0,299}"
GLOB_PATTERN = r"[A-Za-z0-9_.*?/-]{1,200}"
URL_PATTERN = r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?"
QUERY_PATTERN = r"[^\x00-\x1f\x7f]{0,2000}"  # one line; the value reaches the helper as an environment value
# a relative path that cannot be read as an option (configtypes.RelPath checks '..' segments too)
RELPATH_PATTERN = r"[A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}"
BUILDERS = ("docker", "buildah")
IMAGE_PATTERN = r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)+"  # host[:port]/name
# The actions of a service's operations job (`<service>-ops`, vars/enaduOps): helper commands, status
# first (a choice parameter's default is its first choice, and status only reads). promote is offered
# once the helper has that command.
OPS_ACTIONS = tuple(a for a in ("status", "rollback", "abort", "promote") if a in _helper_commands())
# A rollback's reason: one line, as long as the helper records (rollback.REASON_LIMIT); it reaches the
# helper as an environment value only. The rule is the helper's (rollback.history_reason: str.isprintable,
# which refuses the Unicode categories "Other" C* and "Separator" Z* except the ASCII space), written in
# java.util.regex's general-category classes, so a no-break space or a bidi override fails the step first.
REASON_PATTERN = r"(?:[^\p{C}\p{Z}]| ){0,280}"
STORAGE_DRIVERS = ("vfs", "overlay")


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    description: str
    required: bool = False
    default: object = None  # a Python value rendered as a Groovy literal
    pattern: str | None = None  # for String arguments (and each item of a List): a full-match regex
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown parameter type {self.type}")

    @property
    def groovy_class(self) -> str:
        return TYPES[self.type]


@dataclass(frozen=True)
class Step:
    name: str
    summary: str
    description: str
    params: tuple[Param, ...]
    returns: str
    example: str
    env_out: tuple[tuple[str, str], ...] = field(default=())  # environment variables it sets

    @property
    def defaults(self) -> dict[str, object]:
        return {p.name: p.default for p in self.params if p.default is not None}


STEPS: tuple[Step, ...] = (
    Step(
        name="enaduCheckout",
        summary="Check out a service's repository and export the Git variables of the build.",
        description=(
            "Clones the repository at the branch's head with the Git plugin's checkout step and"
            " sets env.GIT_COMMIT, env.GIT_PREVIOUS_SUCCESSFUL_COMMIT, env.GIT_BRANCH and env.GIT_URL"
            " from its answer, which the later steps and the notification use."
        ),
        params=(
            Param("repository", "String", "Git URL of the repository.", required=True),
            Param("branch", "String", "Branch to build.", required=True, pattern=r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}"),
            Param("credentialsId", "String", "Jenkins credentials id for the clone.", pattern=CREDENTIALS_PATTERN),
            Param("commit", "String", "Check out exactly this commit (its full id), not the branch's head: a second"
                  " workspace of the same build, such as the parallel Test branch's agent, gets the commit the"
                  " Checkout stage recorded (env.GIT_COMMIT) even when the branch has moved on. Such a checkout"
                  " records no change log and no polling, and sets no environment variables.",
                  pattern=r"[0-9a-f]{40}|[0-9a-f]{64}"),
        ),
        returns="The map the checkout step returns (GIT_COMMIT, GIT_PREVIOUS_SUCCESSFUL_COMMIT, ...).",
        example="enaduCheckout(repository: 'https://github.com/enadu/enadu.git', branch: 'be-dev')",
        env_out=(
            ("GIT_COMMIT", "the commit being built"),
            ("GIT_PREVIOUS_SUCCESSFUL_COMMIT", "the commit of the last successful build, or empty"),
            ("GIT_BRANCH", "the branch being built"),
            ("GIT_URL", "the repository URL"),
        ),
    ),
    Step(
        name="enaduChanges",
        summary="Decide whether the service's paths changed since what is live (else the last successful build).",
        description=(
            "Runs the helper's 'changes' command on the checked-out repository: it compares GIT_COMMIT with"
            " the commit live in the namespace (the enadu.io/commit annotation deploy writes on the colour the"
            " Service selects, read with the kubeconfig from the secret-file credential as KUBECONFIG), else"
            " with GIT_PREVIOUS_SUCCESSFUL_COMMIT, and matches the changed files against the path globs. A"
            " commit that is unknown or not an ancestor (force-push, shallow clone) is passed over, with the"
            " reason in the result; with nothing to compare with, everything counts as changed. A cluster"
            " that cannot be read only warns. Sets env.ENADU_CHANGED to 'true' or 'false' so later"
            " stages can use when { environment name: 'ENADU_CHANGED', value: 'true' }. In a registration"
            " build (registerOnly: true) the answer is 'false' without comparing: that build only records the"
            " service's repository so that GitHub pushes start the job."
        ),
        params=(
            Param("service", "String", "Service name.", required=True, pattern=SERVICE_PATTERN),
            Param("paths", "List", "Path globs relative to the repository root ('**' matches any depth).", required=True,
                  pattern=GLOB_PATTERN),
            Param("registerOnly", "Boolean", "A registration build (the first build `enadu-pipelines bootstrap`"
                  " queues with ENADU_REGISTER_ONLY=true so that pushes start the job): record the checkout,"
                  " compare nothing, and skip build and deploy.", default=False),
            Param("namespace", "String", "Kubernetes namespace the service is deployed in (where the live commit is"
                  " read); empty: the rendered manifest's.", default="",
                  pattern=r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)?"),
            Param("credentialsId", "String", "Secret-file credentials id holding the kubeconfig (enaduDeploy's):"
                  " read-only use, to get the Service and the live Deployment. Empty: no kubeconfig is bound, so"
                  " the last successful build is compared with (unless the agent runs in a pod with a mounted"
                  " service-account token, which the helper then tries, as every command does).", default="", pattern=f"({CREDENTIALS_PATTERN})?"),
        ),
        returns="true when the service must be rebuilt.",
        example="enaduChanges(service: 'backend', paths: ['backend/**', 'common/**'], namespace: 'enadu',"
                " credentialsId: 'enadu-kubeconfig')",
        env_out=(
            ("ENADU_CHANGED", "'true' or 'false'"),
            ("ENADU_CHANGES_FILE", "path of the JSON result (read by enaduNotify)"),
        ),
    ),
    Step(
        name="enaduTest",
        summary="Run the unit tests as a gate and publish their JUnit results.",
        description=(
            "Runs each command with sh; the first failing command fails the build, so nothing is"
            " built, pushed or deployed. JUnit XML results matching the glob are published even when"
            " a command fails."
        ),
        params=(
            Param("commands", "List", "Shell commands, run in order (plain words: no quotes or shell operators).",
                  required=True, pattern=COMMAND_PATTERN),
            Param("junit", "String", "Glob of JUnit XML result files to publish.", pattern=GLOB_PATTERN),
        ),
        returns="Nothing.",
        example="enaduTest(commands: ['./gradlew --no-daemon :backend:test'], junit: 'backend/build/test-results/test/*.xml')",
        env_out=(
            ("ENADU_TESTS_TOTAL", "number of tests in the JUnit results (with junit)"),
            ("ENADU_TESTS_FAILED", "failed tests (shown in the Discord message)"),
            ("ENADU_TESTS_SKIPPED", "skipped tests"),
        ),
    ),
    Step(
        name="enaduBuild",
        summary="Build the service.",
        description="Runs each command with sh, in order; the first failing command fails the build.",
        params=(Param("commands", "List", "Shell commands, run in order (plain words: no quotes or shell operators).",
                      required=True, pattern=COMMAND_PATTERN),),
        returns="Nothing.",
        example="enaduBuild(commands: ['npm ci', 'npm run build'])",
    ),
    Step(
        name="enaduImage",
        summary="Build the image and push it as <image>:<short sha>-<build number>, with docker or buildah.",
        description=(
            "Logs in to the registry with a username/password credential through --password-stdin"
            " (the password never appears on a command line) and builds and pushes in one sh call."
            " With builder 'docker' (the default) the docker CLI talks to the agent's Docker daemon, in a"
            " throw-away DOCKER_CONFIG so no login is left on the agent. With builder 'buildah' no daemon"
            " is needed: buildah logs in to a throw-away REGISTRY_AUTH_FILE, builds with the given storage"
            " driver (vfs works everywhere, rootless included) and chroot isolation, pushes, and drops the"
            " local tag. With cache (buildah only) the build reuses and stores its layers in that registry"
            " repository (--cache-from/--cache-to, with --layers), so an agent with empty storage (a fresh"
            " pod) still builds from cache; layers older than cacheTtl are rebuilt. insecure (plain HTTP, no TLS verification for login and push) is refused unless"
            " the registry is on loopback (localhost or 127.x.x.x); with docker the daemon's own"
            " insecure-registries setting decides instead. The credential is refused (before it is bound) unless"
            " the library's resources/enadu/credential-hosts.txt pins it to the image's registry host."
            " Sets env.ENADU_IMAGE to the pushed reference."
        ),
        params=(
            Param("image", "String", "Image repository including the registry host, without a tag.", required=True,
                  pattern=IMAGE_PATTERN),
            Param("credentialsId", "String", "Username/password credentials id for the registry.", required=True,
                  pattern=CREDENTIALS_PATTERN),
            Param("context", "String", "Build context, relative to the workspace.", default=".",
                  pattern=RELPATH_PATTERN),
            Param("dockerfile", "String", "Path of the Dockerfile, relative to the workspace.", default="Dockerfile",
                  pattern=RELPATH_PATTERN),
            Param("tag", "String", "Tag to push (default: first 7 characters of GIT_COMMIT, '-', BUILD_NUMBER).",
                  pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"),
            Param("builder", "String", "What builds and pushes the image.", default="docker",
                  choices=BUILDERS),
            Param("storageDriver", "String", "buildah's storage driver (ignored by docker).", default="vfs",
                  choices=STORAGE_DRIVERS),
            Param("insecure", "Boolean", "Plain HTTP to the registry (buildah: --tls-verify=false); only for a"
                  " registry on loopback.", default=False),
            Param("cache", "String", "buildah only: repository of the registry layer cache (--cache-from and"
                  " --cache-to), on the image's registry host, without a tag; absent: no registry cache.",
                  pattern=IMAGE_PATTERN),
            Param("cacheTtl", "String", "buildah only: cached layers older than this are rebuilt (--cache-ttl).",
                  default="168h", pattern=DURATION_PATTERN),
        ),
        returns="The pushed image reference.",
        example="enaduImage(image: 'registry.enadu.dev/enadu/backend', credentialsId: 'enadu-registry', context: 'backend', dockerfile: 'backend/Dockerfile')",
        env_out=(("ENADU_IMAGE", "the pushed image reference"),),
    ),
    Step(
        name="enaduDeploy",
        summary="Deploy an image blue/green on Kubernetes with the helper's 'deploy' command.",
        description=(
            "Writes the service's rendered manifest from the library resources, then runs the"
            " helper's 'deploy' with the kubeconfig from a secret-file credential (as KUBECONFIG): it"
            " starts the idle colour with the image, waits until it is fully available, switches the"
            " Service and retires the old colour after the scale-down delay; the colour records env.GIT_COMMIT"
            " (enadu.io/commit), which enaduChanges compares with. Any failure leaves the"
            " live colour serving (or switches back to it) and fails the step. With analysis, the new"
            " colour's metrics are checked in Prometheus before the old colour is retired; with grafanaUrl,"
            " the outcome is posted as a Grafana annotation with the token from a secret-text credential"
            " (as GRAFANA_TOKEN), which the library's resources/enadu/credential-hosts.txt must pin to the"
            " grafanaUrl host."
        ),
        params=(
            Param("service", "String", "Service name.", required=True, pattern=SERVICE_PATTERN),
            Param("image", "String", "Image reference to deploy.", required=True,
                  pattern=imageref.CHARACTERS),  # the helper checks the grammar
            Param("namespace", "String", "Kubernetes namespace.", required=True, pattern=r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"),
            Param("credentialsId", "String", "Secret-file credentials id holding the kubeconfig.", required=True,
                  pattern=CREDENTIALS_PATTERN),
            Param("timeout", "String", "Bound on waiting for the new colour, its smoke test and the switch.",
                  default="10m", pattern=DURATION_PATTERN),
            Param("scaleDownDelay", "String", "How long the old colour is kept after the switch.", default="30s",
                  pattern=DURATION_PATTERN),
            Param("scaleDownDelayFloor", "String", "A shorter scaleDownDelay is raised to this (the time Service"
                  " proxies may need to see a switch); lower it only where losing requests is fine.", default="30s",
                  pattern=DURATION_PATTERN),
            Param("abortScaleDownDelay", "String", "How long the new colour keeps running after a failure before"
                  " the switch, or after the promotion input's no or timeout, before it is scaled to 0 (Argo"
                  " Rollouts' abortScaleDownDelaySeconds); never: until abort or the next deploy.", default="30s",
                  pattern=f"never|{DURATION_PATTERN}"),
            Param("oldColour", "String", "What happens to the old colour after the delay.", default="scale-to-zero",
                  choices=("scale-to-zero", "delete")),
            Param("smokePath", "String", "HTTP path requested on the idle colour before the switch; empty for none.",
                  default="", pattern=r"(/[A-Za-z0-9._~/-]*)?"),
            Param("autoPromotion", "Boolean", "Switch as soon as the new colour passed its checks. false: run"
                  " 'deploy --hold', ask with an input step whether to promote, then 'promote' (or 'abort' on no or"
                  " a timeout: the build ends ABORTED, the live colour untouched).", default=True),
            Param("autoPromotionSeconds", "Integer", "How long the promotion input waits for an answer.", default=3600),
            Param("previewReplicas", "Integer", "Replicas of the new colour until its promotion (0: full).", default=0),
            Param("promotionSubmitter", "String", "Jenkins user ids or group names (comma-separated) who may answer"
                  " the promotion input; empty for anyone who may build the job.", default="",
                  pattern=r"([A-Za-z0-9][A-Za-z0-9._@-]*(, ?[A-Za-z0-9][A-Za-z0-9._@-]*)*)?"),
            Param("analysis", "Boolean", "After the switch, check the new colour's metrics in Prometheus for the"
                  " analysis window and switch back if a check fails.", default=False),
            Param("prometheusUrl", "String", "Base URL of the Prometheus HTTP API, reachable from the agent.",
                  default="", pattern=f"({URL_PATTERN})?"),
            Param("analysisWindow", "String", "How long the analysis watches, and the range of its queries.",
                  default="2m", pattern=DURATION_PATTERN),
            Param("analysisInterval", "String", "Time between two rounds of queries.", default="20s",
                  pattern=DURATION_PATTERN),
            Param("successRateQuery", "String", "PromQL template for the share of good requests, with {service},"
                  " {namespace}, {colour} and {window}; empty for the helper's default.", default="",
                  pattern=QUERY_PATTERN),
            Param("minSuccessRate", "String", "Fail below this success rate (0 to 1).", default="0.99",
                  pattern=r"0(\.[0-9]{1,6})?|1(\.0{1,6})?"),
            Param("latencyQuery", "String", "PromQL template for a latency in seconds; empty for the helper's"
                  " default (p95).", default="", pattern=QUERY_PATTERN),
            Param("maxLatency", "String", "Fail above this latency in seconds.", default="0.5",
                  pattern=r"[0-9]{1,4}(\.[0-9]{1,6})?"),
            Param("inconclusive", "String", "What an analysis without data counts as.", default="fail",
                  choices=("fail", "pass")),
            Param("analysisBeforeSwitch", "Boolean", "Also check the idle colour's smoke traffic through the preview"
                  " Service before switching.", default=False),
            Param("grafanaUrl", "String", "Grafana to post deploy, rollback and abort annotations to; empty for none.",
                  default="", pattern=f"({URL_PATTERN})?"),
            Param("grafanaCredentialsId", "String", "Secret-text credentials id holding a Grafana service-account"
                  " token (bound as GRAFANA_TOKEN).", default="", pattern=f"({CREDENTIALS_PATTERN})?"),
        ),
        returns="Nothing; the JSON result is at env.ENADU_DEPLOY_FILE.",
        example="enaduDeploy(service: 'backend', image: env.ENADU_IMAGE, namespace: 'enadu', credentialsId: 'enadu-kubeconfig')",
        env_out=(("ENADU_DEPLOY_FILE", "path of the JSON deploy result (read by enaduNotify)"),),
    ),
    Step(
        name="enaduOps",
        summary="Run one operations action (status, rollback, abort...) of a service with the helper.",
        description=(
            "What the service's operations job (<service>-ops, written by `enadu-pipelines bootstrap`) runs:"
            " the helper's status, rollback or abort command (promote too, where the helper has it) with"
            " the same kubeconfig credential, namespace and manifest as enaduDeploy. rollback and abort"
            " take the service's deploy lock (a Lease) like a deploy does, so they never race one; a"
            " rollback pre-empts a deploy that is only waiting out its scale-down delay. The reason is free"
            " text from a build parameter: it is checked to be one line of at most 280 characters and"
            " reaches the helper only as an environment value (ENADU_ROLLBACK_REASON), never through the"
            " shell; rollback requires one. Sets env.ENADU_DEPLOY_FILE to the JSON result, which"
            " enaduNotify reports."
        ),
        params=(
            Param("service", "String", "Service name.", required=True, pattern=SERVICE_PATTERN),
            Param("action", "String", "The helper command to run.", required=True, choices=OPS_ACTIONS),
            Param("reason", "String", "Why (recorded in the Service's history by rollback; required for"
                  " rollback).", default="", pattern=REASON_PATTERN),
            Param("namespace", "String", "Kubernetes namespace.", required=True,
                  pattern=r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"),
            Param("credentialsId", "String", "Secret-file credentials id holding the kubeconfig.", required=True,
                  pattern=CREDENTIALS_PATTERN),
            Param("timeout", "String", "Bound on waiting for a colour to become available and for the switch.",
                  default="10m", pattern=DURATION_PATTERN),
            Param("scaleDownDelay", "String", "How long the colour rolled back from is kept after the switch.",
                  default="30s", pattern=DURATION_PATTERN),
            Param("scaleDownDelayFloor", "String", "A shorter scaleDownDelay is raised to this.", default="30s",
                  pattern=DURATION_PATTERN),
            Param("oldColour", "String", "What rollback does with the colour it leaves after the delay.",
                  default="scale-to-zero", choices=("scale-to-zero", "delete")),
            Param("smokePath", "String", "HTTP path requested on a redeployed colour before the switch; empty for"
                  " none.", default="", pattern=r"(/[A-Za-z0-9._~/-]*)?"),
            Param("promotionSubmitter", "String", "For promote: Jenkins user ids or group names (comma-separated)"
                  " who must approve an input naming the held image first (the service's promotion_submitter);"
                  " empty: whoever may build the job promotes at once.", default="",
                  pattern=r"([A-Za-z0-9][A-Za-z0-9._@-]*(, ?[A-Za-z0-9][A-Za-z0-9._@-]*)*)?"),
        ),
        returns="The helper's exit status (0 on success; the step fails the build otherwise).",
        example="enaduOps(service: 'backend', action: params.ACTION, reason: params.REASON, namespace: 'enadu',"
                " credentialsId: 'enadu-kubeconfig')",
        env_out=(("ENADU_DEPLOY_FILE", "path of the JSON result of the action (read by enaduNotify)"),),
    ),
    Step(
        name="enaduNotify",
        summary="Post the build's result to Discord.",
        description=(
            "Runs the helper's 'notify' command with the webhook URL from a secret-text credential"
            " (as DISCORD_WEBHOOK_URL). The message has the job and build number linking to the build,"
            " the result, the duration, the branch and commit, the changed paths and the deploy"
            " outcome. A notification that cannot be delivered does not change the build result"
            " unless strict is true."
        ),
        params=(
            Param("service", "String", "Service name.", required=True, pattern=SERVICE_PATTERN),
            Param("credentialsId", "String", "Secret-text credentials id holding the webhook URL.", required=True,
                  pattern=CREDENTIALS_PATTERN),
            Param("title", "String", "Human-readable service name for the message.", default=""),
            Param("mentionRole", "String", "Discord role id to ping when the build failed.", default="",
                  pattern=r"([0-9]{17,20})?"),
            Param("strict", "Boolean", "Fail the build when the message cannot be delivered.", default=False),
            Param("timeoutSeconds", "Integer", "Bound on the whole notification, retries included.", default=30),
            Param("action", "String", "The operations action the build ran (enaduOps): the message's title"
                  " names it, and it reports the action's result instead of changes and deploy.", default="",
                  choices=("",) + OPS_ACTIONS),
        ),
        returns="Nothing.",
        example="enaduNotify(service: 'backend', credentialsId: 'enadu-discord-webhook')",
    ),
    Step(
        name="enaduHelper",
        summary="Run one command of the bundled Python helper (used by the other steps).",
        description=(
            "Writes resources/enadu/enadu-helper.pyz (and the resources named in files) from the library"
            " into the build's temporary directory, then in one sh call copies them into a fresh private"
            " directory (mktemp -d, mode 700), checks each copy's sha256 against the value rendered into"
            " this step, runs 'python3 -I' on the copies and removes the directory: what runs is what was"
            " checked, and no .pth file or PYTHON* variable of the agent user reaches the helper."
            " Arguments reach the helper only as environment variables, so no value is ever parsed by"
            " the shell."
        ),
        params=(
            Param("command", "String", "Helper command.", required=True,
                  choices=("changes", "deploy", "status", "rollback", "promote", "abort", "notify")),
            Param("env", "List", "Environment entries 'NAME=value' for the helper.", default=()),
            Param("files", "List", "Library resources the helper reads, as 'NAME=resource': NAME is set to the"
                  " path of the checked private copy.", default=(),
                  pattern=r"[A-Z][A-Z0-9_]{0,63}=enadu/[A-Za-z0-9._/-]{1,200}"),
            Param("label", "String", "Label of the sh step in the build log.", default=""),
        ),
        returns="The helper's exit status.",
        example="int status = enaduHelper(command: 'changes', env: ['ENADU_SERVICE=backend'])",
    ),
)


def by_name() -> dict[str, Step]:
    return {step.name: step for step in STEPS}
