"""A real HTTP server speaking the part of Ollama's API the worker asks (`/v1/models`, `/api/tags`, `/api/ps`,
`/api/show`), in Ollama's own shapes, whose loaded models the test changes (`loaded`) as a load or an eviction would.

Anything else answers 404 `404 page not found`, as Ollama's router does (the worker's llama-server and LM Studio
questions, `/props` and `/api/v0/models`). `asked` counts the requests by path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

DIGEST = "sha256:" + "0" * 64


@dataclass
class Ollama:
    sizes: dict[str, int]
    """Model name -> bytes on disk (what `/api/tags` lists as size)."""
    context_tokens: int = 32768
    loaded: set[str] = field(default_factory=set)
    asked: Counter[str] = field(default_factory=Counter)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> Ollama:
        app = web.Application(middlewares=[self._count])
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/api/tags", self._tags)
        app.router.add_get("/api/ps", self._ps)
        app.router.add_post("/api/show", self._show)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.asked[request.path] += 1
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return web.Response(status=404, text="404 page not found")

    def _model(self, name: str) -> dict[str, object]:
        details = {"format": "gguf", "family": "qwen2", "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}
        return {"name": name, "model": name, "size": self.sizes[name], "digest": DIGEST, "details": details}

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "library"} for name in self.sizes]
        return web.json_response({"object": "list", "data": data})

    async def _tags(self, request: web.Request) -> web.Response:
        models = [{**self._model(name), "modified_at": "2026-12-01T00:00:00Z"} for name in self.sizes]
        return web.json_response({"models": models})

    async def _ps(self, request: web.Request) -> web.Response:
        models = [
            {**self._model(name), "size_vram": self.sizes[name], "expires_at": "2026-12-07T12:00:00Z"}
            for name in sorted(self.loaded)
        ]
        return web.json_response({"models": models})

    async def _show(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("model") not in self.sizes:
            return web.json_response({"error": f"model '{body.get('model')}' not found"}, status=404)
        return web.json_response({"model_info": {"qwen2.context_length": self.context_tokens}, "modelfile": ""})
