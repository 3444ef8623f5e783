"""`foreman dashboard` in a real headless browser (Debian's chromium, driven by Playwright) against the real apiserver,
with the controller (and, where tasks must run, a worker) in the test's event loop.

Screenshots of each page land in the test's output folder (tmp_path); with FOREMAN_SCREENSHOTS=docs they are also
copied there (how docs/dashboard-*.png are made).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from foreman.api.http.client import Kube
from foreman.api.models import transcript
from foreman.api.models.base import utcnow, wire_time
from foreman.api.models.nodes import FleetNode
from foreman.api.models.schedules import TRIGGER_ANNOTATION, TaskSchedule
from foreman.api.models.tasks import AgenticTask
from foreman.api.tooling.localcluster import Identity
from foreman.cli.dashboard import guard
from foreman.cli.dashboard.server import Settings, serving
from tests.clusters import Cluster
from tests.integration.helpers import delete_nodes, foreman_cli, make_task, running_controller, running_worker, wait_for

playwright = pytest.importorskip(
    "playwright.async_api", reason="Playwright for Python is not installed (pip '.[test]')"
)
from playwright.async_api import BrowserContext, Page, Route, async_playwright, expect  # noqa: E402

CHROMIUM = shutil.which("chromium")
# NB: as root Chromium needs --no-sandbox; without the background-networking flags it keeps dialling Google's hosts,
# which this machine's closed network refuses (docs: .library machines notes)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[BrowserContext]:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (`make test` installs it: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="foreman-chromium-") as profile:
        async with async_playwright() as driver:
            context = await driver.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1280, "height": 800}
            )
            try:
                yield context
            finally:
                await context.close()


@pytest.fixture
async def page(browser: BrowserContext) -> AsyncIterator[Page]:
    opened = await browser.new_page()
    try:
        yield opened
    finally:
        await opened.close()


@contextlib.asynccontextmanager
async def dashboard(kube: Kube, namespace: str | None, **settings: Any) -> AsyncIterator[tuple[str, Settings]]:
    chosen = Settings(namespace=namespace, **settings)
    async with serving(kube, chosen, 0) as url:
        yield url, chosen


async def snap(page: Page, folder: Path, name: str) -> None:
    """A screenshot in the test's output folder, and in $FOREMAN_SCREENSHOTS when set."""
    path = folder / f"dashboard-{name}.png"
    await page.screenshot(path=str(path))
    if target := os.environ.get("FOREMAN_SCREENSHOTS"):
        shutil.copy(path, Path(target) / path.name)


async def node(kube: Kube, name: str, *, slots: int = 1, age_s: float = 0, **capability: Any) -> None:
    labels = capability.pop("labels", {})
    await kube.create(
        FleetNode.model_validate({"metadata": {"name": name, "labels": labels}, "spec": {"maxConcurrentTasks": slots}})
    )
    beat = wire_time(utcnow() - timedelta(seconds=age_s))
    await kube.patch_status(
        FleetNode,
        name,
        {
            "phase": "Ready" if age_s < 60 else "NotReady",
            "lastHeartbeatTime": beat,
            "capability": capability,
            "os": "linux" if capability.get("accelerator") != "metal" else "darwin",
            "arch": "arm64" if capability.get("accelerator") == "metal" else "amd64",
            "agentVersion": "0.1.0",
        },
    )


async def test_fleet_shows_the_demo_nodes_with_capabilities_slots_and_heartbeat_colour(
    kube: Kube, namespace: str, page: Page, tmp_path: Path
) -> None:
    nodes = ["gpu-box", "mac-studio", "cpu-server", "old-box"]
    try:
        await node(kube, "gpu-box", slots=2, accelerator="cuda", acceleratorCount=1, totalRAMGB=80,
                   availableRAMGB=80, maxContextTokens=131072, installedModels=["qwen2.5-coder:32b"],
                   executors=["stub", "agent"], modelMemoryGB=80, models=[
                       {"name": "qwen2.5-coder:32b", "sizeGB": 19.9, "loaded": True},
                       {"name": "llama3.1:8b", "sizeGB": 4.9, "loaded": False}])  # fmt: skip
        await node(kube, "mac-studio", accelerator="metal", totalRAMGB=64, availableRAMGB=40, maxContextTokens=32768,
                   installedModels=["llama3.1:8b"], executors=["stub"],
                   labels={"foreman.dev/pool": "design-team"})  # fmt: skip
        await node(kube, "cpu-server", slots=2, accelerator="cpu", totalRAMGB=16, availableRAMGB=12, age_s=45,
                   maxContextTokens=8192, executors=["stub", "command"])  # fmt: skip
        await node(kube, "old-box", accelerator="cpu", totalRAMGB=8, availableRAMGB=8, age_s=600, executors=["stub"])
        async with running_controller(kube, namespace), dashboard(kube, namespace) as (url, _):
            await make_task(kube, namespace, "train-embeddings", requiredCapability={"accelerator": "cuda"})
            await wait_for(kube, namespace, "train-embeddings", lambda t: t.status.assigned_node == "gpu-box")
            await page.goto(url + "#/fleet")
            gpu = page.locator('[data-node="gpu-box"]')
            await expect(gpu.locator(".accelerator")).to_have_text("cuda x1", timeout=WAIT_MS)
            await expect(gpu.locator(".ram")).to_contain_text("0 / 80 GB used")
            await expect(gpu.locator(".context")).to_have_text("131,072 tokens")
            await expect(gpu.locator(".models")).to_contain_text("qwen2.5-coder:32b (131,072 ctx)")
            await expect(gpu.locator(".loaded")).to_contain_text("qwen2.5-coder:32b (19.9 GB)19.9 / 80 GB model memory")
            await expect(gpu.locator(".loaded")).not_to_contain_text("llama3.1:8b")
            await expect(page.locator('[data-node="old-box"] .loaded')).to_have_count(0)  # says nothing of loading
            await expect(gpu.locator(".slots")).to_contain_text("1 / 2")
            await expect(gpu.locator(".slots")).to_contain_text("train-embeddings")
            await expect(gpu.locator(".heartbeat")).to_have_attribute("data-level", "fresh")
            mac = page.locator('[data-node="mac-studio"]')
            await expect(mac.locator(".accelerator")).to_have_text("metal")
            await expect(mac).to_contain_text("foreman.dev/pool=design-team")
            await expect(mac.locator(".ram")).to_contain_text("24 / 64 GB used")
            await expect(page.locator('[data-node="cpu-server"] .context')).to_have_text("8,192 tokens")
            await expect(page.locator('[data-node="cpu-server"] .heartbeat')).to_have_attribute("data-level", "late")
            await expect(page.locator('[data-node="old-box"] .heartbeat')).to_have_attribute("data-level", "stale")
            await snap(page, tmp_path, "fleet")
    finally:
        await delete_nodes(kube, *nodes)


async def test_a_graph_changes_colour_live_the_task_page_shows_the_envelope_and_pending_says_why(
    kube: Kube, namespace: str, page: Page, tmp_path: Path
) -> None:
    graph = {"plan": [], "research-a": ["plan"], "research-b": ["plan"], "report": ["research-a", "research-b"]}
    async with running_controller(kube, namespace), dashboard(kube, namespace) as (url, _):
        for name, upstream in graph.items():
            await make_task(kube, namespace, name, dependsOn=upstream, payload={"sleepSeconds": 0.3},
                            requiredCapability={"nodeSelector": {"dashboard-test": namespace}})  # fmt: skip
        await make_task(kube, namespace, "needs-rocm", requiredCapability={"accelerator": "rocm"})
        await page.goto(url + f"#/graph/{namespace}/plan")
        nodes = page.locator("svg g.node")
        await expect(nodes).to_have_count(4, timeout=WAIT_MS)
        await expect(page.locator("svg path.edge")).to_have_count(4)
        report = page.locator('svg g.node[data-task="report"]')
        await expect(report).to_have_attribute("data-phase", "Pending")
        colour_before = await report.locator("rect").evaluate("rect => getComputedStyle(rect).fill")
        await page.evaluate("() => { window.notReloaded = true; }")

        worker = f"dash-{uuid.uuid4().hex[:6]}"
        async with running_worker(kube, worker, namespace, labels={"dashboard-test": namespace}):
            await expect(page.locator('svg g.node[data-phase="Succeeded"]')).to_have_count(4, timeout=WAIT_MS)
        assert await page.evaluate("() => window.notReloaded === true"), "the page was reloaded"
        await expect(report).to_have_attribute("data-tone", "passed")
        assert await report.locator("rect").evaluate("rect => getComputedStyle(rect).fill") != colour_before
        await snap(page, tmp_path, "graph")

        await report.click()
        await expect(page.locator("h2")).to_have_text(f"{namespace}/report", timeout=WAIT_MS)
        envelope = page.locator("pre.envelope")
        await expect(envelope).to_contain_text('"schemaVersion": "foreman.v1"')
        await expect(envelope).to_contain_text('"verdict": "GO"')
        await expect(page.locator("button.cancel")).to_have_count(0)  # finished, and read-only anyway

        await page.goto(url + f"#/tasks?namespace={namespace}")
        pending = page.locator('tr[data-task="needs-rocm"]')
        await expect(pending.locator("td.why")).to_contain_text("NoFittingNode", timeout=WAIT_MS)
        await expect(pending.locator("td.why")).to_contain_text("rocm")
        await expect(page.locator('tr[data-task="report"]')).to_contain_text("GO")
        await snap(page, tmp_path, "tasks")


async def test_the_task_page_follows_the_agent_transcript_live(
    kube: Kube, namespace: str, page: Page, tmp_path: Path
) -> None:
    await make_task(
        kube, namespace, "fix-calc", kind="issue-fix", executor="agent", payload={"prompt": "Make the calc tests pass."}
    )
    records = [
        {"event": "task", "model": "qwen2.5-coder:7b", "tools": ["read_file", "edit_file", "run"],
         "prompt": "Fix calc"},
        {"event": "answer", "turn": 1, "content": "Let me read the code.",
         "toolCalls": [{"name": "read_file", "arguments": '{"path": "calc.py"}'}],
         "usage": {"prompt": 310, "completion": 22}},
        {"event": "tool", "turn": 1, "name": "read_file", "ok": True, "result": "def add(a, b):\n    return a - b\n"},
    ]  # fmt: skip

    async def write_transcript(count: int) -> None:
        text = "".join(json.dumps(record) + "\n" for record in records[:count])
        configmap = {"apiVersion": "v1", "kind": "ConfigMap", "data": {transcript.KEY: text},
                     "metadata": {"name": transcript.configmap_name("fix-calc"), "namespace": namespace}}  # fmt: skip
        await kube.apply(configmap)

    await write_transcript(2)
    async with dashboard(kube, namespace) as (url, _):
        await page.goto(url + f"#/task/{namespace}/fix-calc")
        entries = page.locator(".transcript .entry")
        await expect(entries).to_have_count(2, timeout=WAIT_MS)
        await expect(entries.nth(1)).to_contain_text('read_file({"path": "calc.py"})')
        await page.evaluate("() => { window.notReloaded = true; }")
        await write_transcript(3)
        await expect(entries).to_have_count(3, timeout=WAIT_MS)
        await expect(entries.nth(2)).to_contain_text("return a - b")
        gate = {"name": "unittest", "status": "passed", "exitStatus": 0, "seconds": 0.4, "outputTail": "Ran 1\nOK\n"}
        review = {"agentRef": "careful", "model": "big-model", "verdict": "GO", "reasons": "add() adds now"}
        result = {"schemaVersion": "foreman.v1", "kind": "issue-fix", "verdict": "GO", "summary": "Fixed add()",
                  "gates": [gate], "fixRounds": 1, "review": review}  # fmt: skip
        usage = {"promptTokens": 310, "completionTokens": 22, "totalTokens": 332, "turns": 1, "toolCalls": 1}
        attempts = [
            {"number": 1, "node": "small-box", "model": "small-model", "outcome": "Escalated"},
            {"number": 2, "node": "big-box", "model": "big-model", "outcome": "Completed", "verdict": "GO"},
        ]
        await kube.patch_status(
            AgenticTask,
            "fix-calc",
            {"phase": "Succeeded", "verdict": "GO", "result": result, "usage": usage, "attemptHistory": attempts},
            namespace=namespace,
        )
        await expect(page.locator("pre.envelope")).to_contain_text("Fixed add()", timeout=WAIT_MS)
        await expect(page.locator(".kv.usage")).to_contain_text("310 in, 22 out (332)")
        await expect(page.locator("table.gates")).to_contain_text("unittest")
        await expect(page.locator("h3", has_text="Gates")).to_have_text("Gates (1 fix round)")
        await expect(page.locator(".kv.review")).to_contain_text("add() adds now")
        await expect(page.locator("table.attempts tbody tr")).to_have_count(2)
        await expect(page.locator("table.attempts")).to_contain_text("Escalated")
        assert await page.evaluate("() => window.notReloaded === true"), "the page was reloaded"
        await snap(page, tmp_path, "task")
        await page.goto(url + "#/fleet")
        await expect(page.locator("table.escalations")).to_contain_text("small-model", timeout=WAIT_MS)
        await expect(page.locator("table.escalations")).to_contain_text("big-model")


async def test_with_allow_actions_cancel_and_trigger_work_and_other_origins_are_refused(
    kube: Kube, namespace: str, page: Page, tmp_path: Path
) -> None:
    schedule = {
        "metadata": {"name": "nightly-review", "namespace": namespace},
        "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin",
                 "taskTemplate": {"spec": {"kind": "review", "payload": {"prompt": "Review the merges."}}}},
    }  # fmt: skip
    await kube.create(TaskSchedule.model_validate(schedule))
    async with running_controller(kube, namespace), dashboard(kube, namespace, allow_actions=True) as (url, settings):
        await make_task(kube, namespace, "long-summary", requiredCapability={"accelerator": "rocm"})
        await page.goto(url + f"#/task/{namespace}/long-summary")
        await page.locator("button.cancel").click(timeout=WAIT_MS)
        cancelled = await wait_for(kube, namespace, "long-summary", lambda t: t.phase == "Failed")
        assert cancelled.status.failure_reason == "Cancelled"
        await expect(page.locator("button.cancel")).to_have_count(0, timeout=WAIT_MS)

        await page.goto(url + "#/schedules")
        card = page.locator('[data-schedule="nightly-review"]')
        await expect(card.locator("ul.next li")).to_have_count(3, timeout=WAIT_MS)
        await expect(card.locator("ul.next li").first).to_contain_text("03:00")
        await expect(card.locator("ul.next li").first).to_contain_text("UTC)")

        async def answer_after_the_redraw(route: Route) -> None:
            """The order a loaded machine produced (a CI run): the trigger's effect reaches the page, which redraws
            the card, before the trigger's own answer; the answer must still be shown."""
            answer = await route.fetch()
            await expect(card.locator("table tbody tr")).to_have_count(1, timeout=WAIT_MS)
            await route.fulfill(response=answer)

        await page.route("**/trigger", answer_after_the_redraw)
        await card.locator("button.trigger").click()
        await expect(card.locator(".message")).to_contain_text("triggered", timeout=WAIT_MS)
        fired = await kube.get(TaskSchedule, "nightly-review", namespace)
        assert fired.metadata.annotations.get(TRIGGER_ANNOTATION)
        await snap(page, tmp_path, "schedules")

        cancel = f"{url}api/tasks/{namespace}/long-summary/cancel"
        own = url.rstrip("/").removeprefix("http://")
        token = {guard.TOKEN_HEADER: settings.token}
        async with aiohttp.ClientSession() as http:
            for headers in (
                {"Origin": "http://evil.example", **token},
                {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site", **token},
                {"Sec-Fetch-Site": "cross-site", **token},
                {**token},  # no Origin, no fetch metadata: not from a browser page of ours
                {"Origin": f"http://{own}"},  # same origin, no token
            ):
                async with http.post(cancel, headers=headers) as refused:
                    assert refused.status == 403, headers
            async with http.get(url, headers={"Host": "evil.example:8090"}) as rebound:
                assert rebound.status == 403  # a DNS-rebinding page names its own host
            async with http.post(cancel, headers={"Origin": f"http://{own}", **token}) as allowed:
                assert allowed.status == 409  # accepted, and it says the task already finished


async def test_read_only_by_default_no_cancel_button_and_posts_refused(kube: Kube, namespace: str, page: Page) -> None:
    await make_task(kube, namespace, "waiting")
    async with dashboard(kube, namespace) as (url, settings):
        await page.goto(url + f"#/task/{namespace}/waiting")
        await expect(page.locator("h2")).to_have_text(f"{namespace}/waiting", timeout=WAIT_MS)
        await expect(page.locator("pre.spec")).to_contain_text("kind: verify")
        await expect(page.locator("button.cancel")).to_have_count(0)
        assert await page.locator('meta[name="foreman-token"]').get_attribute("content") == ""
        own = url.rstrip("/").removeprefix("http://")
        async with aiohttp.ClientSession() as http:
            headers = {"Origin": f"http://{own}", guard.TOKEN_HEADER: settings.token}
            async with http.post(f"{url}api/tasks/{namespace}/waiting/cancel", headers=headers) as refused:
                assert refused.status == 403
                assert "read-only" in (await refused.json())["error"]
        assert not (await kube.get(AgenticTask, "waiting", namespace)).spec.cancel


async def test_the_command_serves_the_namespace_of_its_kubeconfig_until_stopped(
    cluster: Cluster, namespace: str
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "foreman.cli", "dashboard", "--port", "0", "-n", namespace,
        "--kubeconfig", str(cluster.kubeconfig()), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        assert line.startswith(f"dashboard of {namespace} on https://127.0.0.1:"), line
        url = line.rsplit(": ", 1)[1].strip()
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as index:
                assert index.status == 200
                page = await index.text()
                assert '<meta name="foreman-actions" content="false">' in page
                assert index.headers["X-Frame-Options"] == "DENY"
            async with http.get(url + "static/vendor/dagre.min.js") as dagre:
                assert dagre.status == 200
            async with http.get(url + "healthz", headers={"Host": "10.1.2.3:8090"}) as probe:
                assert await probe.text() == "ok"  # a kubelet probe names the pod's IP
            async with http.get(url + "events/tasks") as events:
                assert events.headers["Content-Type"] == "text/event-stream"
                first = await events.content.readline()
                assert json.loads(first.removeprefix(b"data: "))["rows"] == []
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 30) == 0

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = await foreman_cli(cluster, "dashboard", "--port", port, "-n", namespace)
    assert code == 2
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: "), err


async def test_it_reads_with_the_users_own_rights(cluster: Cluster, kube: Kube, namespace: str, page: Page) -> None:
    """As the worker's identity (tasks yes; listing FleetNodes and TaskSchedules no) the pages say what they may not
    show, and show the rest."""
    await make_task(kube, namespace, "visible")
    as_worker = await Kube.connect(str(cluster.kubeconfig(Identity.WORKER)))
    async with as_worker, dashboard(as_worker, namespace) as (url, _):
        await page.goto(url + "#/fleet")
        await expect(page.locator(".errors")).to_contain_text("cannot watch nodes", timeout=WAIT_MS)
        await expect(page.locator(".errors")).to_contain_text("forbidden")
        await page.goto(url + "#/schedules")
        await expect(page.locator(".errors")).to_contain_text("cannot watch schedules", timeout=WAIT_MS)
        await page.goto(url + "#/tasks")
        await expect(page.locator('tr[data-task="visible"]')).to_have_count(1, timeout=WAIT_MS)
