"""Upgrades keep the fleet (issue 35, part 5): `foreman install` over the previous release (its CRDs, RBAC, policies
and a fleet in its schema: tests/integration/previous.py) keeps every task, schedule, node, queue and Agent as
stored, and the cluster then serves the current CRDs. The chart's upgrade: tests/integration/test_chart.py."""

from foreman.api.http.client import Kube
from foreman.api.http.features import for_server
from foreman.api.models.nodes import FleetNode
from foreman.api.tooling.crd import all_crds
from foreman.api.tooling.install import install
from tests.integration import previous
from tests.integration.helpers import difference


async def test_foreman_install_over_the_previous_release_keeps_every_object_and_serves_the_new_schema(
    own_kube: Kube,
) -> None:
    kube = own_kube
    await previous.install(kube)
    # NB: the previous schema has no spec.drain: the apiserver prunes it
    assert not (await kube.patch(FleetNode, "gpu-01", {"spec": {"drain": True}})).spec.drain
    before = await previous.fleet(kube)
    assert before["AgenticTask/done"]["status"]["result"]["verdict"] == "GO"
    await install(kube)
    await previous.assert_kept(kube, before)
    for crd in for_server(all_crds(), await kube.server_version()):
        stored = await kube.get_raw(crd["apiVersion"], crd["kind"], crd["metadata"]["name"])
        assert difference(stored["spec"], crd["spec"]) is None, crd["metadata"]["name"]
    drained = await kube.patch(FleetNode, "gpu-01", {"spec": {"drain": True}})
    assert drained.spec.drain
