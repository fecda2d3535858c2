"""promote: switch to the colour a held deploy (deploy --hold) prepared.

Manual promotion, as Argo Rollouts' ``kubectl argo rollouts promote`` resumes a blue/green rollout
paused by ``autoPromotionEnabled: false`` (argo-rollouts rollout/bluegreen.go). Under the deploy lock
it checks that the idle colour is the one the held deploy marked (kube/promotion.py), runs exactly
--image (without --image: the held image) and is fully available; then, as Argo does with
``previewReplicaCount``, scales it from its preview count to what the live colour runs and waits
until it is fully available, smoke-tests it again (--smoke-path), switches the Service and retires
the old colour after the scale-down delay, exactly as deploy does from its switch on. A refusal
leaves everything as it was (exit 1); the exit codes are deploy's.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any, Dict

from .cli import env_default
from .deploy import Deployer, add_cluster_arguments, add_smoke_argument, add_switch_arguments, open_cluster, options, \
    run_command, warn_about_delay
from .errors import UsageProblem
from .report import Reporter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cluster_arguments(parser)
    parser.add_argument("--image", default=env_default("ENADU_IMAGE"),
                        help="the image to promote; refused unless the held colour runs exactly it (default: the held "
                             "image) [ENADU_IMAGE]")
    parser.add_argument("--manifest", default=env_default("ENADU_MANIFEST"),
                        help="the service's rendered manifest (resources/enadu/k8s/<service>.yaml) [ENADU_MANIFEST]")
    add_smoke_argument(parser, when="again, after scaling to full: ")
    add_switch_arguments(parser, default_old="scale-to-zero")


def run(args: argparse.Namespace) -> int:
    def body(report: Reporter, result: Dict[str, Any]) -> Dict[str, Any]:
        opts = replace(options(args, needs_image=False), promote=True)
        if not opts.manifest_path:
            raise UsageProblem("--manifest (or ENADU_MANIFEST) is required")
        warn_about_delay(opts, report.log, result)
        from .kube import manifest as manifests

        manifest = manifests.load(opts.manifest_path, opts.service)
        kube, opts = open_cluster(args, opts, report, result, manifest)
        outcome = Deployer(kube, manifest, opts, report.log, result, lambda: report.checkpoint(result)).run()
        if outcome.get("outcome") == "deployed":
            outcome["outcome"] = "promoted"
        return outcome

    return run_command("promote", args, body)
