"""kubernetes-asyncio's configuration loaders and HTTP client, without its generated API.

`import kubernetes_asyncio` runs package __init__ files that import the whole generated client, ~700 model classes
and ~60 API classes: 32 MiB of every daemon's memory (a third of the controller's) and a third of a second of its
start, none of which Foreman uses (requests are built by api/http/requests.py, answers decoded into our pydantic
models). What it is kept for is what we would not write as well: kubeconfig loading (exec plugins, OIDC, client
certificates, token refresh), the in-cluster configuration, and the aiohttp client that signs requests with them.

So, before anything imports the packages, the two whose __init__ pulls the generated code in (`kubernetes_asyncio`
and `kubernetes_asyncio.client`, and `client.models`, which `api_client` imports by name) are registered as plain
packages over the same folders; their submodules then import as usual. Where the full package is already loaded
(a program that imported it first), it is used as it is.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

_ROOT = "kubernetes_asyncio"


def _bare_package(name: str, folder: Path) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = [str(folder)]
    sys.modules[name] = module
    return module


if _ROOT not in sys.modules:
    _spec = importlib.util.find_spec(_ROOT)
    assert _spec is not None, "kubernetes-asyncio is not installed"
    assert _spec.origin is not None
    _folder = Path(_spec.origin).parent
    _top = _bare_package(_ROOT, _folder)
    _client = _bare_package(f"{_ROOT}.client", _folder / "client")
    _bare_package(f"{_ROOT}.client.models", _folder / "client" / "models")
    _top.client = _client  # type: ignore[attr-defined]
    from kubernetes_asyncio.client import api_client, configuration

    # NB: the config loaders import these two names from the package itself
    _client.ApiClient = api_client.ApiClient  # type: ignore[attr-defined]
    _client.Configuration = configuration.Configuration  # type: ignore[attr-defined]

# NB: after the registration above, by design
from kubernetes_asyncio.client.api_client import ApiClient  # noqa: E402
from kubernetes_asyncio.client.configuration import Configuration  # noqa: E402
from kubernetes_asyncio.config.config_exception import ConfigException  # noqa: E402
from kubernetes_asyncio.config.incluster_config import load_incluster_config  # noqa: E402
from kubernetes_asyncio.config.kube_config import list_kube_config_contexts, load_kube_config  # noqa: E402

__all__ = [
    "ApiClient",
    "ConfigException",
    "Configuration",
    "list_kube_config_contexts",
    "load_incluster_config",
    "load_kube_config",
]
