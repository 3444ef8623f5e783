"""`agent`: an LLM agent on the node's own OpenAI-compatible inference server (llama.cpp, Ollama, vLLM, mlx).

The loop: system prompt and task prompt; a streamed model call with the allowed tools; each answer judged
(`conversation.judge`), its tool calls run in the workspace, their results appended; until the model calls
`submit_result`, `maxTurns` is reached, or the task's timeout or cancel ends it (as asyncio.CancelledError, which
kills a running command). The transcript is published after every turn, in the background (a turn never waits for
the apiserver); usage goes into the envelope's `extra`.
Everything the node allows (server, commands, workspace, push) comes from the worker's configuration, never from
the task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import structlog
from pydantic import Field, ValidationError, model_validator

from foreman.api.lifecycle import reasons, upstream
from foreman.api.models.base import utcnow
from foreman.api.models.envelope import PASSING_VERDICTS, ChildRecord, ResultEnvelope, ReviewRecord, Usage, Verdict
from foreman.api.models.gates import GateResult
from foreman.api.models.nodes import NodeSandbox
from foreman.api.models.pullrequests import PullRequestRecord
from foreman.api.models.review import ReviewStage
from foreman.api.models.tasks import AgenticTask
from foreman.api.models.transcript import Transcript, capped
from foreman.api.models.validation import describe
from foreman.worker import escalation, review
from foreman.worker.agent import conversation, forge, forgeclient, gating, git, subtasks, workspace
from foreman.worker.agent.conversation import REPEAT_LIMIT, Act, Message, Retry, Settings, Stop, Tell
from foreman.worker.agent.errors import ToolError, WorkspaceError
from foreman.worker.agent.forge import ForgeSettings, Repository
from foreman.worker.agent.forgeclient import ForgeError
from foreman.worker.agent.llm import Completion, ContextExceeded, Endpoint, ModelRequest, ModelServer, backoff
from foreman.worker.agent.publisher import Publisher
from foreman.worker.agent.schedules import ScheduleTool
from foreman.worker.agent.stream import ToolCall
from foreman.worker.agent.subtasks import Subtasks
from foreman.worker.agent.tools import MODEL_VERDICTS, Toolbox
from foreman.worker.agent.workspace import Workspace
from foreman.worker.executors.base import ExecutionContext, ExecutorHooks, InferenceServer
from foreman.worker.sandbox import sandbox
from foreman.worker.sandbox.sandbox import Sandbox, SandboxSettings

log = structlog.get_logger("foreman.worker.agent")

PULL_REQUEST_FAILED = "PullRequestFailed"


class AgentExecutorSettings(SandboxSettings):
    """`executors: {agent: {...}}` in the worker's config file (`--llm-endpoint` sets `endpoint`); the sandbox's
    settings (`sandbox`, `network`, `limits`, `readOnlyPaths`) are among them."""

    model_config = SandboxSettings.model_config | {"extra": "forbid"}

    endpoint: str | None = None
    """OpenAI-compatible base URL, e.g. http://127.0.0.1:11434/v1 (Ollama), http://127.0.0.1:8080/v1 (llama-server)."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the server's key (keys never come from a task)."""
    allow_commands: list[list[str]] = Field(default_factory=list)
    """argv prefixes the `run` tool may execute, e.g. [["python3", "-m", "pytest"], ["make", "test"]]."""
    workspace_root: str | None = None
    keep_workspace: Literal["never", "onFailure", "always"] = "never"
    push: bool = False
    git_author: str = "Foreman agent <agent@foreman.dev>"
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    retry_budget_seconds: float = Field(default=300.0, ge=0)
    """Seconds a model call may keep failing (5xx, resets, timeouts) before the task fails with ExecutorError."""
    allow_repos: list[str] = Field(default_factory=list)
    """Repositories a task may name in payload.repo: URL prefixes, and local paths only when listed."""
    git_config: dict[str, str] = Field(default_factory=dict)
    """Git settings for the worker's own clone and push (a credential helper, a proxy): the only git config it reads
    beyond what it writes itself."""
    model_aliases: dict[str, str] = Field(default_factory=dict)
    """Name a task or Agent uses -> name the server lists, e.g. {"qwen2.5-coder:32b": "qwen2.5-coder-32b-q4.gguf"}
    (Ollama and llama-server name the same model differently); placement matches the aliases too."""
    forge: ForgeSettings | None = None
    """Where pull requests go (`kind: gitea | github`, `url`, `tokenEnv` or `tokenFile`): with `push`, a task's
    branch on this forge gets one (its `pullRequest` says when); the token also serves the worker's clone and push
    of the forge's repositories."""

    @model_validator(mode="after")
    def _token_hidden(self) -> Self:
        if self.forge is not None and (shown := forge.token_shown(self.forge, self.read_only_paths)):
            raise ValueError(shown)
        return self


@dataclass
class Tally:
    """What one task consumed, summed over every answer the server streamed (retried ones included)."""

    model: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    turns: int = 0
    tool_calls: int = 0
    estimated: bool = False
    cached_prompt_tokens: int | None = None

    def add(self, completion: Completion) -> None:
        self.prompt_tokens += completion.usage.prompt
        self.completion_tokens += completion.usage.completion
        self.estimated = self.estimated or completion.estimated
        if completion.usage.cached is not None:
            self.cached_prompt_tokens = (self.cached_prompt_tokens or 0) + completion.usage.cached

    def usage(self) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            total_tokens=self.prompt_tokens + self.completion_tokens,
            turns=self.turns,
            tool_calls=self.tool_calls,
            model=self.model,
            estimated=self.estimated,
            cached_prompt_tokens=self.cached_prompt_tokens,
        )


SUBMITTED = "Submitted"


@dataclass
class Ending:
    verdict: Verdict
    summary: str
    reason: str
    extra: dict[str, Any] = field(default_factory=dict)
    gates: tuple[GateResult, ...] = ()
    """The verify gates' last round (none listed, or the model did not pass: none ran)."""
    fix_rounds: int = 0
    pull_request: PullRequestRecord | None = None
    review: ReviewRecord | None = None


class AgentExecutor(ExecutorHooks):
    name = "agent"

    def __init__(self) -> None:
        self._servers: dict[tuple[str, str | None], ModelServer] = {}

    def is_configured(self, settings: Mapping[str, Any]) -> bool:
        return bool(settings.get("endpoint"))

    def inference_server(self, settings: Mapping[str, Any]) -> InferenceServer | None:
        parsed = AgentExecutorSettings.model_validate(settings)
        if not parsed.endpoint:
            return None
        return InferenceServer(parsed.endpoint, parsed.api_key_env, parsed.model_aliases)

    async def confinement(self, settings: Mapping[str, Any]) -> NodeSandbox:
        """Which sandbox the agent's commands run in, said once at start: where none works, why and how to fix it."""
        parsed = AgentExecutorSettings.model_validate(settings)
        found = await sandbox.shared(parsed, allow_commands=parsed.allow_commands, workspace_root=parsed.workspace_root)
        if not found.runs_commands:
            log.error("agents get no run tool: no sandbox works here", reason=found.message)
        elif found.kind == "none":
            log.warning("agent commands run UNCONFINED", reason=found.message)
        else:
            log.info("agent commands run confined", sandbox=found.kind, version=found.version,
                     network=parsed.network, limits=[limit.to_wire() for limit in found.enforced()])  # fmt: skip
        return found.status().model_copy(update={"allow_commands": parsed.allow_commands})

    def server(self, settings: AgentExecutorSettings) -> ModelServer:
        """One client per endpoint, shared by the node's tasks (its connection pool, what it learnt of the server)."""
        assert settings.endpoint is not None
        api_key = os.environ.get(settings.api_key_env) if settings.api_key_env else None
        key = (settings.endpoint, api_key)
        if key not in self._servers:
            endpoint = Endpoint(
                settings.endpoint, api_key, settings.request_timeout_seconds, settings.retry_budget_seconds
            )
            self._servers[key] = ModelServer(endpoint)
        return self._servers[key]

    async def execute(self, task: AgenticTask, context: ExecutionContext) -> ResultEnvelope:
        try:
            settings = AgentExecutorSettings.model_validate(context.settings)
        except ValidationError as error:
            raise RuntimeError(f"executors.agent settings are invalid: {describe(error)}") from None
        if not settings.endpoint:
            raise RuntimeError("the agent executor has no endpoint configured on this worker (--llm-endpoint)")
        agent = conversation.settings_for(task, context.agent, aliases=settings.model_aliases)
        started = time.monotonic()
        confined = await sandbox.shared(
            settings, allow_commands=settings.allow_commands, workspace_root=settings.workspace_root
        )
        space = workspace.create(settings.workspace_root, task.name)
        run = AgentRun(task, agent, self.server(settings), space, settings, context, confined)
        ending: Ending | None = None
        try:
            ending = await (run.review(task.status.review) if task.status.review is not None else run.work())
        finally:
            kept = keeps_workspace(settings, ending)
            if kept:
                log.info("workspace kept", task=task.name, path=str(space.root))
            else:
                await workspace.remove(space)
        if context.metrics is not None:
            context.metrics.agent_turns.observe(run.tally.turns)
        extra = {**ending.extra, "usage": run.tally.usage().to_wire(), "sandbox": sandbox_of(confined)}
        if kept:
            extra["workspace"] = str(space.root)
        return ResultEnvelope(
            kind=task.spec.kind,
            verdict=ending.verdict,
            summary=ending.summary[:65536],
            extra=extra,
            elapsed_sec=round(time.monotonic() - started, 3),
            failure_reason=None if ending.reason == SUBMITTED else ending.reason,
            gates=list(ending.gates),
            fix_rounds=ending.fix_rounds,
            pull_request=ending.pull_request,
            review=ending.review,
            children=await run.children(),
        )


def schedule_tool(task: AgenticTask, context: ExecutionContext) -> ScheduleTool | None:
    """`set_schedule`, where the task's Agent allows it schedules and the worker lent a fleet."""
    subtasks = context.agent.subtasks if context.agent is not None else None
    if subtasks is None or subtasks.max_schedules == 0 or context.fleet is None or context.agent is None:
        return None
    return ScheduleTool(context.fleet, task, context.node_name, context.agent, context.metrics)


def sandbox_of(confined: Sandbox) -> dict[str, str]:
    """What the envelope says of the confinement its commands ran in (`unconfined` said plainly)."""
    status = confined.status()
    return {"kind": "unconfined" if status.kind == "none" else status.kind, "network": status.network}


def keeps_workspace(settings: AgentExecutorSettings, ending: Ending | None) -> bool:
    """Whether the workspace stays after the task (None: it did not end by itself). A commit that was not pushed
    lives only there, so its workspace stays whatever `keepWorkspace` says."""
    if settings.keep_workspace == "always" or (ending is not None and ending.extra.get("commit") and not settings.push):
        return True
    return settings.keep_workspace == "onFailure" and (ending is None or ending.verdict not in PASSING_VERDICTS)


class AgentRun:
    """One task's conversation with the model, in its workspace."""

    def __init__(
        self,
        task: AgenticTask,
        settings: Settings,
        server: ModelServer,
        space: Workspace,
        config: AgentExecutorSettings,
        context: ExecutionContext,
        confined: Sandbox | None = None,
    ):
        self.task = task
        self.settings = settings
        self.server = server
        self.space = space
        self.config = config
        self.context = context
        self.tally = Tally(model=settings.model)
        self.transcript = Transcript()
        self.git = git.Git(space, config.git_config)
        self.forge: Repository | str | None = None
        """The task's repository on the worker's forge, or why its pull request cannot be opened (its token could
        not be read); None: no forge, no repository, or one off the forge."""
        self.forge_token = ""
        offer = context.model.offer if context.model is not None else None
        served = offer.context_tokens if offer is not None else None
        self.fitting = conversation.Fitting(
            conversation.budget_for(settings.context_window_tokens, served, settings.max_output_tokens)
        )
        self.publisher = Publisher(context.publish_transcript)
        commands = tuple(tuple(prefix) for prefix in config.allow_commands)
        self.toolbox = Toolbox(space, settings.tools, commands, confined, schedule_tool(task, context))
        self.subtasks = subtasks_of(task, context)
        self.gates = task.gates_with(context.agent)
        self.max_fix_rounds = task.max_fix_rounds_with(context.agent)
        self.log = log.bind(task=task.name, namespace=task.namespace, node=context.node_name)

    async def children(self) -> list[ChildRecord]:
        """The envelope's children: in review, the work's, carried by its review stage (the reviewer creates none,
        and is lent nothing to read them with); else the sub-task tools', read now."""
        if self.task.status.review is not None:
            return list(self.task.status.review.children)
        return await self.subtasks.records() if self.subtasks is not None else []

    async def work(self) -> Ending:
        payload = self.task.spec.payload
        branch = base = None
        if payload.repo:
            if refused := git.refusal(payload.repo, self.config.allow_repos):
                raise WorkspaceError(refused)
            branch = workspace.branch_for(self.task.name, payload.branch)
            self.on_forge(payload.repo)
            base = await self.git.checkout(payload.repo, branch)
        prompt = conversation.task_prompt(self.task, branch=branch)
        inherits = self.context.agent is not None and self.context.agent.inherit_upstream
        if inherits and (told := upstream.inherited(self.context.upstreams)):
            prompt = f"{prompt}\n\n{told}"
        self.transcript.add(
            {"event": "task", "turn": 0, "at": _now(), "model": self.settings.model, "tools": list(self.settings.tools),
             "prompt": capped(prompt), "repo": payload.repo, "branch": branch}
        )  # fmt: skip
        self.publish()
        try:
            ending = await self.verified(conversation.opening(self.settings, prompt))
        except ContextExceeded as exceeded:
            ending = Ending("INCOMPLETE", f"the conversation does not fit the model's context: {exceeded}",
                            reasons.CONTEXT_EXCEEDED)  # fmt: skip
        except asyncio.CancelledError:
            # NB: the timeout, a cancel or a drain; the transcript says so (its writer outlives this task)
            self.transcript.add({"event": "end", "turn": self.tally.turns, "at": _now(), "reason": "Stopped"})
            self.publish()
            raise
        reviewed = ending.verdict == "GO" and self.task.review_with(self.context.agent) is not None
        failure = None if ending.reason == SUBMITTED else ending.reason
        escalates = escalation.escalates(self.task.escalation_with(self.context.agent), self.settings.model,
                                         self.task.status.escalation, ending.verdict, failure)  # fmt: skip
        policy = self.task.pull_request_with(self.context.agent)
        wanted = forge.asked(policy, ending.verdict, reviewed=reviewed, escalates=escalates) if self.forge else None
        if payload.repo and branch and base and (ending.verdict in PASSING_VERDICTS or wanted == "draft"):
            change = await self.git.commit(
                base=base, branch=branch, message=_commit_message(self.task, ending), author=self.config.git_author,
                push=self.config.push,
            )  # fmt: skip
            ending.extra.update(branch=change.branch, commit=change.commit, changedFiles=change.changed_files)
            if change.skipped:
                ending.extra["notCommitted"] = change.skipped
            if reviewed and change.commit:
                ending.extra[review.DIFF_KEY] = review.bounded_diff(await self.git.diff(base, change.commit))
            if wanted and self.config.push and (change.commit or self.git.remote_branch):
                await self.open_pull_request(ending, change, draft=wanted == "draft")
        return await self.ended(ending)

    async def ended(self, ending: Ending) -> Ending:
        self.transcript.add({"event": "end", "turn": self.tally.turns, "at": _now(), "verdict": ending.verdict,
                             "reason": ending.reason, "summary": capped(ending.summary)})  # fmt: skip
        self.publish()
        await self.publisher.flush()
        return ending

    async def review(self, stage: ReviewStage) -> Ending:
        """The review stage: the reviewer's conversation on the work (a checkout of its pushed branch where there is
        one, the diff, the gates' results, the agent's summary); its answer is the task's verdict, anything but a
        clear GO a NO-GO (`review.judged`). Then the pull request the verdict calls for, for the work's branch."""
        payload = self.task.spec.payload
        where = "The workspace is empty: the diff below is the whole change."
        if payload.repo and stage.branch:
            if refused := git.refusal(payload.repo, self.config.allow_repos):
                raise WorkspaceError(refused)
            self.on_forge(payload.repo)
            await self.git.checkout(payload.repo, stage.branch)
            where = (
                f"The workspace is a checkout of {payload.repo}, branch {stage.branch}, with the change."
                if self.git.remote_branch
                else f"The workspace is a checkout of {payload.repo} without the change (it was not pushed)."
            )
        if self.context.agent is None or not self.context.agent.system_prompt:
            self.settings = dataclasses.replace(self.settings, system_prompt=review.REVIEW_PROMPT)
        prompt = review.prompt(conversation.asked(self.task), stage, workspace=where)
        self.transcript.add(
            {"event": "task", "turn": 0, "at": _now(), "model": self.settings.model, "tools": list(self.settings.tools),
             "prompt": capped(prompt), "repo": payload.repo, "branch": stage.branch, "review": stage.agent_ref}
        )  # fmt: skip
        self.publish()
        try:
            said, _ = await self.converse(conversation.opening(self.settings, prompt))
        except ContextExceeded as exceeded:
            said = Ending("INCOMPLETE", str(exceeded), reasons.CONTEXT_EXCEEDED)
        except asyncio.CancelledError:
            self.transcript.add({"event": "end", "turn": self.tally.turns, "at": _now(), "reason": "Stopped"})
            self.publish()
            raise
        answer = review.judged(said.verdict, submitted=said.reason == SUBMITTED, summary=said.summary,
                               ended=said.reason)  # fmt: skip
        self.transcript.add({"event": "review", "turn": self.tally.turns, "at": _now(), "verdict": answer.verdict,
                             "reasons": capped(answer.reasons)})  # fmt: skip
        ending = Ending(answer.verdict, stage.summary, SUBMITTED, review.work_of(stage), tuple(stage.gates),
                        stage.fix_rounds, review=review.record(stage, self.settings.model, answer))  # fmt: skip
        wanted = stage.pull_request.wants(answer.verdict) if self.forge else None
        if wanted and stage.branch and self.config.push and self.git.remote_branch:
            change = git.Change(stage.branch, stage.commit, list(stage.changed_files))
            await self.open_pull_request(ending, change, draft=wanted == "draft")
        return await self.ended(ending)

    async def verified(self, messages: list[Message]) -> Ending:
        """The conversation, then the gates after the model's pass: a failing gate's output goes back to the model
        for a fix round while rounds and turns are left (`gating.decide`), else the verdict is GATE-FAIL."""
        ending, messages = await self.converse(messages)
        rounds = 0
        while gating.must_verify(self.gates, ending.verdict, ending.reason == SUBMITTED):
            step = gating.decide(
                self.gates, await self.run_gates(rounds), rounds_done=rounds, max_rounds=self.max_fix_rounds,
                turns_left=self.settings.max_turns - self.tally.turns,
            )  # fmt: skip
            if isinstance(step, gating.Passed):
                return dataclasses.replace(ending, gates=step.results, fix_rounds=rounds)
            if isinstance(step, gating.GateFail):
                return gate_fail(step, rounds, ending)
            rounds += 1
            self.transcript.add({"event": "note", "turn": self.tally.turns, "message": capped(step.message)})
            messages = conversation.told(self.answered(messages, "not accepted: a verify gate failed"), step.message)
            try:
                ending, messages = await self.converse(messages)
            except ContextExceeded:
                return gate_fail(gating.gave_out(step, rounds), rounds, ending)
            if ending.reason != SUBMITTED:
                return gate_fail(gating.gave_out(step, rounds), rounds, ending)
            if ending.verdict not in PASSING_VERDICTS:  # NB: the model gave up; its verdict stands, the gates say why
                return dataclasses.replace(ending, gates=step.results, fix_rounds=rounds)
        return ending

    async def run_gates(self, round_: int) -> list[GateResult]:
        """One round of gates, in order, up to the first that fails; each one's end in the transcript."""
        results: list[GateResult] = []
        while (gate := gating.next_gate(self.gates, results)) is not None:
            result = await self.toolbox.gate(gate)
            results.append(result)
            self.log.info("gate ran", gate=gate.name, status=result.status, exit_status=result.exit_status)
            self.transcript.add(
                {"event": "gate", "turn": self.tally.turns, "at": _now(), "round": round_, "name": gate.name,
                 "status": result.status, "exitStatus": result.exit_status, "seconds": result.seconds,
                 "output": capped(result.output_tail)}
            )  # fmt: skip
            self.publish()
        return results

    def answered(self, messages: list[Message], result: str) -> list[Message]:
        """The history with a tool result for each call of the last answer that has none (the submit_result, and
        any call after it): a chat template refuses calls left unanswered."""
        last = messages[-1] if messages else {}
        calls = last.get("tool_calls") or [] if last.get("role") == "assistant" else []
        return [*messages, *({"role": "tool", "tool_call_id": c["id"], "content": result} for c in calls)]

    def on_forge(self, repo: str) -> None:
        """A repository on the worker's forge: its token for git's clone and push, and where its pull request goes.
        A repository elsewhere gets none (a worker may serve local repositories beside its forge's). A token that
        cannot be read fails only the pull request (with why); the clone goes on without it."""
        forge_settings = self.config.forge
        if forge_settings is None:
            return
        found = forge.repository_on(forge_settings, repo)
        if not isinstance(found, Repository):
            self.log.info("no pull request for this repository", reason=found)
            return
        self.forge = found
        try:
            self.forge_token = forgeclient.token_of(forge_settings, os.environ)
        except ForgeError as error:
            self.forge = str(error)
            return
        self.git.config = {**self.git.config, **forge.git_credentials(forge_settings)}
        self.git.secrets = {forge.TOKEN_VARIABLE: self.forge_token}

    async def open_pull_request(self, ending: Ending, change: git.Change, *, draft: bool) -> None:
        """Open (or update) the branch's pull request; a forge that refuses makes the outcome PullRequestFailed with
        its message, the pushed branch kept."""
        assert self.config.forge is not None
        assert self.forge is not None
        try:
            if not isinstance(self.forge, Repository):
                raise ForgeError(self.forge)
            client_settings, repo = self.config.forge, self.forge
            report = forge.Report(
                task=self.task, verdict=ending.verdict, summary=ending.summary, usage=self.usage_all(),
                models=self.models_tried(), commit=change.commit, changed_files=tuple(change.changed_files),
                gates=ending.gates, fix_rounds=ending.fix_rounds, review=ending.review,
            )  # fmt: skip
            wanted = forge.wanted(client_settings.kind, report, head=change.branch, draft=draft)
            record = await forgeclient.pull_request(client_settings, self.forge_token, repo, wanted)
        except ForgeError as error:
            message = forge.scrubbed(str(error), self.forge_token)
            self.log.warning("pull request failed", branch=change.branch, error=message)
            ending.reason = PULL_REQUEST_FAILED
            ending.extra["pullRequestError"] = message
            self.transcript.add({"event": "pullRequest", "turn": self.tally.turns, "at": _now(), "error": message})
            return
        ending.pull_request = record
        self.log.info("pull request", url=record.url, number=record.number, draft=record.draft)
        self.transcript.add({"event": "pullRequest", "turn": self.tally.turns, "at": _now(), **record.to_wire()})

    def usage_all(self) -> Usage:
        """What every attempt of the task consumed: the ones before (their records) and this one (its tally)."""
        before = [a.usage for a in self.task.status.attempt_history[:-1] if a.usage is not None]
        return forge.total_usage([*before, self.tally.usage()])

    def models_tried(self) -> tuple[str, ...]:
        """Every model the task's attempts ran with (the escalation ladder's, the reviewer's), first use first."""
        tried = [attempt.model for attempt in self.task.status.attempt_history]
        return tuple(dict.fromkeys(model for model in (*tried, self.settings.model) if model))

    async def converse(self, messages: list[Message]) -> tuple[Ending, list[Message]]:
        """The model's turns until it submits (or stops): its ending, and the history so far."""
        nudged = False
        history: list[ToolCall] = []
        while self.tally.turns < self.settings.max_turns:
            completion, step = await self.ask(messages, nudged)
            self.tally.turns += 1
            self.report()
            turn = self.tally.turns
            answer = completion.answer
            self.transcript.add(answer_record(turn, completion))
            if isinstance(step, Stop):
                return Ending("INCOMPLETE", step.summary, step.reason), messages
            if isinstance(step, Tell):
                said = conversation.assistant_message(answer, ())
                messages = conversation.told([*messages, said] if said else messages, step.message)
                nudged = nudged or step.message == conversation.NUDGE
                self.transcript.add({"event": "note", "turn": turn, "message": step.message})
            else:
                assert isinstance(step, Act)
                nudged = False
                calls = conversation.with_ids(step.calls, turn)
                if step.recovered:  # NB: the call goes back as a structured one, the text that held it not at all
                    answer = dataclasses.replace(answer, content="")
                    self.transcript.add({"event": "note", "turn": turn, "message": "tool calls recovered from text",
                                         "toolCalls": [{"id": c.id, "name": c.name} for c in calls]})  # fmt: skip
                said = conversation.assistant_message(answer, calls)
                assert said is not None
                messages = [*messages, said]
                for call in calls:
                    submitted = submitted_ending(call) if call.name == "submit_result" else None
                    if isinstance(submitted, Ending):
                        self.counted_call(call, ok=True)
                        return submitted, messages
                    result, ok = (submitted, False) if submitted is not None else await self.use(call, history)
                    history.append(call)
                    self.counted_call(call, ok=ok)
                    messages = [*messages, conversation.tool_message(call, result)]
                    self.transcript.add(
                        {"event": "tool", "turn": turn, "id": call.id, "name": call.name, "ok": ok,
                         "result": capped(result)}
                    )  # fmt: skip
            self.publish()
        summary = f"stopped after maxTurns={self.settings.max_turns} model calls without submit_result"
        return Ending("INCOMPLETE", summary, reasons.MAX_TURNS_EXCEEDED), messages

    async def ask(self, messages: list[Message], nudged: bool) -> tuple[Completion, Act | Tell | Stop]:
        """One model call, asked again (with backoff) while its answer must not enter the history."""
        retries = 0
        refitted = False
        while True:
            self.fitting = self.fitting.fitted(messages)
            request = ModelRequest(
                model=self.settings.model,
                messages=self.fitting.view(messages),
                tools=self.tool_definitions(),
                max_tokens=self.settings.max_output_tokens,
                temperature=self.settings.temperature,
                turn_timeout=self.settings.turn_timeout,
                require_tool=nudged,
            )
            try:
                completion = await self.server.complete(request, self.retrying)
            except ContextExceeded as exceeded:
                if refitted or exceeded.context is None:
                    raise
                # NB: the server knows its context better than discovery did: fit to what it says, once
                refitted = True
                budget = conversation.budget_for(None, exceeded.context, self.settings.max_output_tokens)
                assert budget is not None
                self.fitting = self.fitting.within(budget)
                await self.retrying(f"prompt exceeds the context ({exceeded}); fitted to {budget} tokens", 0.0)
                continue
            self.tally.add(completion)
            self.count(completion)
            step = conversation.judge(
                completion.answer, truncated_retries=retries, nudged=nudged, schemas=self.tool_schemas()
            )
            if not isinstance(step, Retry):
                return completion, step
            retries += 1
            delay = backoff(retries)
            await self.retrying(step.reason, delay)
            await asyncio.sleep(delay)

    def tool_definitions(self) -> list[dict[str, Any]]:
        return [*self.toolbox.definitions(), *(self.subtasks.definitions() if self.subtasks else ())]

    def tool_schemas(self) -> dict[str, dict[str, Any]]:
        return {**self.toolbox.schemas(), **(self.subtasks.schemas() if self.subtasks else {})}

    def report(self) -> None:
        if self.context.report_usage is not None:
            self.context.report_usage(self.tally.usage())

    def counted_call(self, call: ToolCall, *, ok: bool) -> None:
        self.tally.tool_calls += 1
        self.report()
        if self.context.metrics is not None:
            self.context.metrics.agent_tool_calls.labels(call.name, "ok" if ok else "error").inc()

    def count(self, completion: Completion) -> None:
        metrics = self.context.metrics
        if metrics is None:
            return
        model = self.settings.model or "default"
        metrics.agent_tokens.labels(model, "prompt").inc(completion.usage.prompt)
        metrics.agent_tokens.labels(model, "completion").inc(completion.usage.completion)
        if completion.usage.cached is not None:
            metrics.agent_tokens.labels(model, "prompt_cached").inc(completion.usage.cached)
        measured = completion.generation_seconds > 0 and completion.usage.completion > 1
        if completion.answer.speed is not None or measured:
            # NB: the server's own measure where it gives one (it excludes the network and our parsing)
            speed = completion.answer.speed or completion.usage.completion / completion.generation_seconds
            metrics.agent_generation_speed.labels(model).observe(speed)
            report = self.context.model.report_speed if self.context.model is not None else None
            if report is not None and self.settings.model:
                report(self.settings.model, speed)

    async def retrying(self, reason: str, delay: float) -> None:
        self.log.warning("model call retried", reason=reason, retry_in=round(delay, 2))
        self.transcript.add({"event": "retry", "turn": self.tally.turns + 1, "at": _now(), "reason": reason})

    async def use(self, call: ToolCall, history: list[ToolCall]) -> tuple[str, bool]:
        """Run one tool call; its error, if any, is its result (the model hears it, the task goes on)."""
        if conversation.repeats(history, call) >= REPEAT_LIMIT - 1:
            return (
                f"error: you made this exact call {REPEAT_LIMIT} times in a row; its result will not change. "
                "Try something else, or call submit_result.",
                False,
            )
        arguments = call.parsed()
        assert arguments is not None, "judge() lets only calls with JSON-object arguments through"
        try:
            if self.subtasks is not None and call.name in subtasks.TOOLS:
                return await self.subtasks.call(call.name, arguments), True
            return await self.toolbox.call(call.name, arguments), True
        except ToolError as error:
            return f"error: {error}", False

    def publish(self) -> None:
        self.publisher.offer(self.transcript.text())


def subtasks_of(task: AgenticTask, context: ExecutionContext) -> Subtasks | None:
    """The sub-task tools, where the task's Agent lists Agents its children may run and the worker lent a fleet."""
    policy = context.agent.subtasks if context.agent is not None else None
    if policy is None or not policy.agents or context.fleet is None:
        return None
    deadline = time.monotonic() + task.spec.timeout_seconds
    return Subtasks(task, policy, context.fleet, context.node_name, deadline, context.metrics)


def answer_record(turn: int, completion: Completion) -> dict[str, Any]:
    answer = completion.answer
    calls = [{"id": c.id, "name": c.name, "arguments": capped(c.arguments)} for c in answer.tool_calls]
    return {
        "event": "answer",
        "turn": turn,
        "at": _now(),
        "content": capped(answer.content),
        "reasoning": capped(answer.reasoning),
        "toolCalls": calls,
        "finishReason": answer.finish_reason,
        "usage": {
            "prompt": completion.usage.prompt,
            "completion": completion.usage.completion,
            "cached": completion.usage.cached,
            "estimated": completion.estimated,
        },
    }


def gate_fail(step: gating.GateFail, rounds: int, last: Ending) -> Ending:
    """GATE-FAIL: the failing gate's name, exit status and output tail are in the envelope's `gates`."""
    said = f"; the agent said: {last.summary}" if last.summary else ""
    return Ending("GATE-FAIL", f"{step.summary}{said}", reasons.GATE_FAILED, dict(last.extra), step.results, rounds)


def submitted_ending(call: ToolCall) -> Ending | str:
    """submit_result's arguments as the ending, or the error to hand back to the model."""
    arguments = call.parsed() or {}
    verdict = arguments.get("verdict")
    summary = arguments.get("summary")
    extra = arguments.get("extra")
    if verdict not in MODEL_VERDICTS:
        return f"error: verdict must be one of {', '.join(MODEL_VERDICTS)}; got {verdict!r}"
    if not isinstance(summary, str):
        return "error: summary must be a string"
    if extra is not None and not isinstance(extra, dict):
        return "error: extra must be an object"
    return Ending(verdict, summary, SUBMITTED, dict(extra or {}))


def _commit_message(task: AgenticTask, ending: Ending) -> str:
    first = ending.summary.strip().splitlines()[0][:72] if ending.summary.strip() else f"Work of task {task.name}"
    return f"{first}\n\n{ending.summary}\n\nForeman-Task: {task.namespace}/{task.name}\n"


def _now() -> str:
    return utcnow().isoformat(timespec="seconds").replace("+00:00", "Z")
