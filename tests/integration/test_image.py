"""The Dockerfile's image (tests/servers/image.py, `make image`) runs what the manifests run it for, against the
suite's apiserver: the DaemonSet's `foreman worker` with a per-node identity from `foreman node join` registers its
FleetNode Ready, and the Deployment's `foreman controller` with its ServiceAccount's token takes its Lease and places a
task on that worker, which runs it. Skipped where the image is not built, but never under CI, which builds it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from foreman.api.http.kube import Kube
from foreman.api.models.resources import FleetNode
from foreman.api.tooling.manifests import CONTROLLER, NAMESPACE, WORKER, install_manifests
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, free_port, make_task, phase_is, serves, until, wait_for
from tests.servers import image
from tests.tokens import kubeconfig_with_token, service_account_token

MISSING = image.missing()
pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(MISSING is not None and not os.environ.get("CI"), reason=MISSING or ""),
]
KUBECONFIG = "/etc/foreman/kubeconfig"
STARTUP = 60
"""Seconds a container may take to start and register: Python's start in a fresh container on a loaded machine."""


@pytest.fixture(autouse=True)
def built() -> None:
    if MISSING is not None:
        pytest.fail(f"CI is set but the image cannot run: {MISSING}")


def container_args(kind: str, name: str, **values: str) -> list[str]:
    """The command line the manifests give the image's container (`kind`: Deployment or DaemonSet `name`), each
    `--flag_name` of `values` set (replaced, or added) to its value."""
    workload = next(
        m for m in install_manifests(with_workloads=True) if m["kind"] == kind and m["metadata"]["name"] == name
    )
    args: list[str] = workload["spec"]["template"]["spec"]["containers"][0]["args"]
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


async def test_the_images_worker_and_controller_run_a_task_with_the_identities_the_manifests_give_them(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    node, pod, pool = f"image-{run}", f"foreman-controller-{run}", f"image-{run}"
    joined = tmp_path / "node.kubeconfig"
    code, _, err = await foreman_cli(cluster, "node", "join", node, "-o", str(joined), "-l", f"pool={pool}")
    assert (code, err) == (0, ""), err
    worker_port, controller_port = free_port(), free_port()
    worker_args = container_args(
        "DaemonSet", WORKER, node_name=node, health_port=str(worker_port), kubeconfig=KUBECONFIG
    )
    try:
        # as join wrote it (owner-only) the image's uid 10001 may not read it: one line, exit 2 for its supervisor
        async with image.running(f"foreman-unreadable-{run}", *worker_args, files={joined: KUBECONFIG}) as refused:
            assert await refused.wait() == 2, await refused.logs()
            assert (await refused.logs()).strip() == f"error: permission denied: {KUBECONFIG} (as uid 10001)"

        joined.chmod(0o644)  # NB: pytest's folder is private to this user; uid 10001 owns nothing here
        async with image.running(f"foreman-worker-{run}", *worker_args, files={joined: KUBECONFIG}) as worker:
            registered = await until(
                lambda: kube.get(FleetNode, node), lambda n: n.status.phase == "Ready", timeout=STARTUP
            )
            assert registered.status.identity is not None
            assert registered.status.identity.kind == "per-node", await worker.logs()
            assert await serves(worker_port, "/healthz")

            token = await service_account_token(kube, NAMESPACE, CONTROLLER)
            identity = kubeconfig_with_token(cluster.kubeconfig(), token, tmp_path / "controller.kubeconfig")
            identity.chmod(0o644)
            controller_args = container_args(
                "Deployment", CONTROLLER, health_port=str(controller_port), kubeconfig=KUBECONFIG,
                namespace=namespace, lease_name=pod,
            )  # fmt: skip
            controller_files = {identity: KUBECONFIG}
            controller_env = {"POD_NAME": pod}  # as the Deployment's fieldRef gives it
            async with image.running(pod, *controller_args, files=controller_files, env=controller_env) as controller:
                await until(lambda: serves(controller_port, "/readyz"), bool, timeout=STARTUP)
                await until(
                    lambda: kube.get_raw("coordination.k8s.io/v1", "Lease", pod, NAMESPACE),
                    lambda lease: lease["spec"].get("holderIdentity") == pod,
                )

                await make_task(kube, namespace, "in-the-image", nodeSelector={"pool": pool})
                done = await wait_for(kube, namespace, "in-the-image", phase_is("Succeeded"), timeout=STARTUP)
                assert done.status.assigned_node == node
                assert await controller.stop() == 0, await controller.logs()
            assert await worker.stop() == 0, await worker.logs()  # drained on SIGTERM, as the kubelet stops it
    finally:
        await foreman_cli(cluster, "node", "leave", node, "--force")
