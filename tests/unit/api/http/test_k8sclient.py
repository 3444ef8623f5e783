"""kubernetes-asyncio loaded without its generated API: the daemons' memory, and the loaders still working."""

import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import sys{first}
from foreman.api.http.client import load_configuration
import asyncio
configuration, namespace = asyncio.run(load_configuration(sys.argv[1]))
generated = [name for name in sys.modules if name.startswith("kubernetes_asyncio.client.models.")]
print(configuration.host, namespace, len(generated))
"""
KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.9:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team}}]
current-context: x
"""


# NB: a fresh interpreter importing the whole generated client (hundreds of modules) takes seconds on a loaded
# machine: the bound is that process's, not the 5 s of in-process unit logic.
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("first", "generated"), [("", "0"), ("\nimport kubernetes_asyncio", "many")])
def test_a_kubeconfig_loads_without_the_generated_models_unless_they_were_loaded_first(
    tmp_path: Path, first: str, generated: str
) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    answer = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first), str(path)], capture_output=True, text=True, check=True
    )
    host, namespace, count = answer.stdout.split()
    assert (host, namespace) == ("https://10.0.0.9:6443", "team")
    assert count == "0" if generated == "0" else int(count) > 500
