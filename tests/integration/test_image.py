"""The Dockerfile's image (tests/servers/image.py, `make image`) runs what the manifests run it for, against the
suite's apiserver: the DaemonSet's `foreman worker` with a per-node identity from `foreman node join` registers its
FleetNode Ready, and the Deployment's `foreman controller` with its ServiceAccount's token takes its Lease and places a
task on that worker, which runs it. Skipped where the image is not built, but never under CI, which builds it."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from foreman.api.http.client import Kube
from foreman.api.models.nodes import FleetNode
from foreman.api.tooling.manifests import CONTROLLER, NAMESPACE, WORKER, install_manifests
from tests.clusters import Cluster
from tests.integration.helpers import foreman_cli, free_port, make_task, phase_is, serves, until, wait_for
from tests.servers import image
from tests.tokens import service_account_token

MISSING = image.missing()
pytestmark = [
    pytest.mark.image,
    pytest.mark.skipif(MISSING is not None and not os.environ.get("CI"), reason=MISSING or ""),
]
KUBECONFIG = "/etc/foreman/kubeconfig"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
STARTUP = 60
"""Seconds a container may take to start and register: Python's start in a fresh container on a loaded machine."""


@pytest.fixture(autouse=True)
def built() -> None:
    if MISSING is not None:
        pytest.fail(f"CI is set but the image cannot run: {MISSING}")


def workload(kind: str, name: str) -> dict[str, Any]:
    """The pod spec the manifests give the image's container (`kind`: Deployment or DaemonSet `name`)."""
    manifest = next(
        m for m in install_manifests(with_workloads=True) if m["kind"] == kind and m["metadata"]["name"] == name
    )
    pod: dict[str, Any] = manifest["spec"]["template"]["spec"]
    return pod


def container_args(pod: dict[str, Any], **values: str) -> list[str]:
    """The pod's container's command line, each `--flag_name` of `values` set (replaced, or added) to its value."""
    args: list[str] = pod["containers"][0]["args"]
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


def scratch(pod: dict[str, Any]) -> tuple[str, ...]:
    """Where the pod's container has an emptyDir mounted: the only places its read-only root lets it write."""
    empty = {volume["name"] for volume in pod.get("volumes", []) if "emptyDir" in volume}
    return tuple(m["mountPath"] for m in pod["containers"][0].get("volumeMounts", []) if m["name"] in empty)


def service_account_files(kubeconfig: Path, token: str, folder: Path) -> Path:
    """What the kubelet mounts at SERVICE_ACCOUNT for a pod: its token, the cluster's CA and the pod's namespace.
    NB: only in-cluster does the client read the CA from a file; a kubeconfig's CA data it writes to a temporary
    file, which the read-only root without a /tmp refuses."""
    config = yaml.safe_load(kubeconfig.read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    folder.mkdir()
    for name, content in (("token", token.encode()), ("ca.crt", ca), ("namespace", NAMESPACE.encode())):
        (folder / name).write_bytes(content)
        (folder / name).chmod(0o644)  # NB: the kubelet's default mode; uid 10001 owns nothing here
    return folder


async def serving(container: image.Container, port: int, path: str) -> None:
    try:
        await until(lambda: serves(port, path), bool, timeout=STARTUP)
    except AssertionError:
        raise AssertionError(f"{container.name} never answered {path}: {await container.logs()}") from None


async def test_the_images_worker_and_controller_run_a_task_with_the_identities_the_manifests_give_them(
    cluster: Cluster, kube: Kube, namespace: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:6]
    node, pod, pool = f"image-{run}", f"foreman-controller-{run}", f"image-{run}"
    joined = tmp_path / "node.kubeconfig"
    code, _, err = await foreman_cli(cluster, "node", "join", node, "-o", str(joined), "-l", f"pool={pool}")
    assert (code, err) == (0, ""), err
    worker_port, controller_port = free_port(), free_port()
    daemonset = workload("DaemonSet", WORKER)
    worker_args = container_args(daemonset, node_name=node, health_port=str(worker_port), kubeconfig=KUBECONFIG)
    worker_files, worker_scratch = {joined: KUBECONFIG}, scratch(daemonset)
    try:
        # as join wrote it (owner-only) the image's uid 10001 may not read it: one line, exit 2 for its supervisor
        async with image.running(
            f"unreadable-{run}", *worker_args, files=worker_files, scratch=worker_scratch
        ) as refused:
            assert await refused.wait() == 2, await refused.logs()
            assert (await refused.logs()).strip() == f"error: permission denied: {KUBECONFIG} (as uid 10001)"

        joined.chmod(0o644)  # NB: pytest's folder is private to this user; uid 10001 owns nothing here
        async with image.running(f"worker-{run}", *worker_args, files=worker_files, scratch=worker_scratch) as worker:
            registered = await until(
                lambda: kube.get(FleetNode, node), lambda n: n.status.phase == "Ready", timeout=STARTUP
            )
            assert registered.status.identity is not None
            assert registered.status.identity.kind == "per-node", await worker.logs()
            await serving(worker, worker_port, "/healthz")

            token = await service_account_token(kube, NAMESPACE, CONTROLLER)
            deployment = workload("Deployment", CONTROLLER)
            controller_args = container_args(
                deployment, health_port=str(controller_port), namespace=namespace, lease_name=pod
            )
            server = urlsplit(kube.server)
            # as the kubelet runs the Deployment's pod: its ServiceAccount's files, the Service's address, the fieldRef
            controller_env = {
                "KUBERNETES_SERVICE_HOST": str(server.hostname),
                "KUBERNETES_SERVICE_PORT": str(server.port),
                "POD_NAME": pod,
            }
            account = service_account_files(cluster.kubeconfig(), token, tmp_path / "serviceaccount")
            async with image.running(
                pod,
                *controller_args,
                files={account: SERVICE_ACCOUNT},
                env=controller_env,
                scratch=scratch(deployment),
            ) as controller:
                await serving(controller, controller_port, "/readyz")
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


async def test_bubblewrap_confines_the_agents_commands_in_the_image_only_with_the_readmes_security_context() -> None:
    """What the README's securityContext for the worker is for: under the runtime's default seccomp filter and masked
    /proc, as the DaemonSet runs, bubblewrap cannot start a sandbox."""
    run, pod = uuid.uuid4().hex[:6], workload("DaemonSet", WORKER)
    for sandboxing, code in ((True, 0), (False, 1)):
        check = image.running(
            f"sandbox-{run}-{sandboxing}", "worker", "--check-sandbox", scratch=scratch(pod), sandboxing=sandboxing
        )
        async with check as worker:
            exited = await worker.wait()
            said = await worker.logs()
            assert exited == code, said
            assert ("ok   sandbox: bubblewrap" in said) is sandboxing, said
