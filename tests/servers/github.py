"""A stand-in for GitHub's REST API, as much of it as the worker's pull requests use, speaking its documented shapes
(docs.github.com/rest/pulls/pulls, /rest/repos/repos): the repository's `default_branch`; pulls listed with
`state` and `head=OWNER:BRANCH` filters; a create answered 201, or 422 "Validation Failed" with "A pull request
already exists for OWNER:BRANCH." while one is open for the head; PATCH of title and body; 401 "Bad credentials"
for any other token. Failures can be queued (`fail`: a status, or None for an answer that never comes), and every
request is recorded with its headers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class GitHub:
    token: str
    owner: str = "octo"
    repo: str = "calc"
    default_branch: str = "main"
    pulls: list[dict[str, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    failures: list[tuple[int | None, str]] = field(default_factory=list)
    """Answers to give before the real ones, in order: (status, message), or (None, _) to never answer."""
    rival: str | None = None
    """A title: the next create finds a pull request of that title opened for its head meanwhile (another worker's
    create that won the race), and is answered 422."""
    lose_create_answer: bool = False
    """The next create is carried out but its answer never comes (a timeout on the caller's side)."""
    url: str = ""
    _runner: web.AppRunner | None = None

    def fail(self, status: int | None, message: str = "Server Error", times: int = 1) -> None:
        self.failures += [(status, message)] * times

    async def __aenter__(self) -> GitHub:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.seen.append(Seen(request.method, request.path, dict(request.query), dict(request.headers), body))
        if self.failures:
            status, message = self.failures.pop(0)
            if status is None:
                await asyncio.sleep(3600)
            return web.json_response({"message": message}, status=status or 500)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Bad credentials", "status": "401"}, status=401)
        base = f"/repos/{self.owner}/{self.repo}"
        if request.path == base and request.method == "GET":
            return web.json_response({"full_name": f"{self.owner}/{self.repo}", "default_branch": self.default_branch})
        if request.path == f"{base}/pulls" and request.method == "GET":
            return web.json_response(self._listed(request.query))
        if request.path == f"{base}/pulls" and request.method == "POST":
            created = self._create(body)
            if self.lose_create_answer:
                self.lose_create_answer = False
                await asyncio.sleep(3600)
            return created
        if request.path.startswith(f"{base}/pulls/") and request.method == "PATCH":
            number = int(request.path.rsplit("/", 1)[-1])
            pull = next((pull for pull in self.pulls if pull["number"] == number), None)
            if pull is None:
                return web.json_response({"message": "Not Found"}, status=404)
            pull.update({key: body[key] for key in ("title", "body") if key in body})
            return web.json_response(pull)
        return web.json_response({"message": "Not Found"}, status=404)

    def _listed(self, query: Any) -> list[dict[str, Any]]:
        state = query.get("state", "open")
        head = query.get("head")
        return [
            pull for pull in self.pulls
            if (state == "all" or pull["state"] == state) and (head is None or pull["head"]["label"] == head)
        ]  # fmt: skip

    def _create(self, body: dict[str, Any]) -> web.Response:
        if self.rival is not None:
            self._opened({**body, "title": self.rival})
            self.rival = None
        label = f"{self.owner}:{body['head']}"
        if any(pull["head"]["label"] == label and pull["state"] == "open" for pull in self.pulls):
            error = {
                "resource": "PullRequest",
                "code": "custom",
                "message": f"A pull request already exists for {label}.",
            }
            return web.json_response({"message": "Validation Failed", "errors": [error]}, status=422)
        return web.json_response(self._opened(body), status=201)

    def _opened(self, body: dict[str, Any]) -> dict[str, Any]:
        label = f"{self.owner}:{body['head']}"
        number = len(self.pulls) + 1
        full = f"{self.owner}/{self.repo}"
        pull = {
            "number": number, "state": "open", "title": body["title"], "body": body.get("body"),
            "draft": bool(body.get("draft")), "html_url": f"https://github.com/{full}/pull/{number}",
            "url": f"{self.url}/repos/{full}/pulls/{number}",
            "head": {"ref": body["head"], "label": label, "repo": {"full_name": full}},
            "base": {"ref": body["base"], "label": f"{self.owner}:{body['base']}", "repo": {"full_name": full}},
        }  # fmt: skip
        self.pulls.append(pull)
        return pull
