"""Verify gates' decisions as pure functions: which gate runs next, and what a round of gate results leads to (the
model's pass stands, a fix round, or GATE-FAIL).

The worker runs the gates itself (`Toolbox.gate`), in their listed order, after the model's passing verdict; the
model only ever hears a failing gate's output. `Passed` is the one way to a passing verdict where gates are listed,
and it is built only from a result per gate, in order, each passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from foreman.api.models.envelope import PASSING_VERDICTS, Verdict
from foreman.api.models.gates import Gate, GateResult


@dataclass(frozen=True)
class Passed:
    """Every gate ran, in order, and passed: the model's verdict stands."""

    results: tuple[GateResult, ...]


@dataclass(frozen=True)
class FixRound:
    """A gate failed and a fix round is left: `message` goes to the model as a new user turn."""

    results: tuple[GateResult, ...]
    failed: GateResult
    message: str


@dataclass(frozen=True)
class GateFail:
    """A gate failed and no fix round (or turn) is left: the verdict is GATE-FAIL."""

    results: tuple[GateResult, ...]
    failed: GateResult
    summary: str


Decision = Passed | FixRound | GateFail


def must_verify(gates: Sequence[Gate], verdict: Verdict, submitted: bool) -> bool:
    """Whether the model's ending goes through the gates: any passing verdict it submitted, where gates are listed."""
    return bool(gates) and submitted and verdict in PASSING_VERDICTS


def next_gate(gates: Sequence[Gate], results: Sequence[GateResult]) -> Gate | None:
    """The gate to run next in this round: the first without a result, none once one failed or all ran."""
    if any(not result.passed for result in results) or len(results) >= len(gates):
        return None
    return gates[len(results)]


def completed(gates: Sequence[Gate], results: Sequence[GateResult]) -> tuple[GateResult, ...]:
    """A round's results with every gate named, in order: those after a failure `notRun`."""
    ran = {result.name: result for result in results}
    return tuple(ran.get(gate.name) or GateResult(name=gate.name, status="notRun") for gate in gates)


def decide(
    gates: Sequence[Gate], results: Sequence[GateResult], *, rounds_done: int, max_rounds: int, turns_left: int
) -> Decision:
    """What a round of gate results leads to. `rounds_done`: fix rounds the model already had; `turns_left`: model
    calls its maxTurns still allows (a fix round needs at least one)."""
    full = completed(gates, results)
    failed = next((result for result in full if not result.passed), None)
    if failed is None and [r.name for r in results] == [g.name for g in gates]:
        return Passed(full)
    if failed is None:  # NB: a result for a gate not listed, or out of order: never a pass
        failed = GateResult(name=gates[0].name if gates else "-", status="notRun")
    gate = next((g for g in gates if g.name == failed.name), None)
    if rounds_done < max_rounds and turns_left >= 1:
        return FixRound(full, failed, fix_message(gate, failed, round_=rounds_done + 1, rounds=max_rounds))
    return GateFail(full, failed, fail_summary(failed, rounds_done))


def gave_out(step: FixRound, rounds_done: int) -> GateFail:
    """The model's fix round ended without a new submit (turns, context or words ran out): the gate still fails."""
    return GateFail(step.results, step.failed, fail_summary(step.failed, rounds_done))


def described(result: GateResult) -> str:
    if result.status == "timedOut":
        return f"timed out after {result.seconds:g} s and was killed"
    if result.status == "notRun":
        return "was not run"
    return f"failed with exit status {result.exit_status}"


def fix_message(gate: Gate | None, failed: GateResult, *, round_: int, rounds: int) -> str:
    command = " ".join(gate.argv) if gate is not None else failed.name
    cut = f" (the last {len(failed.output_tail)} of {failed.output_bytes} bytes)" if failed.output_bytes > len(
        failed.output_tail.encode()
    ) else ""  # fmt: skip
    limit = f"\n{failed.limit}" if failed.limit else ""
    return (
        f"Your result was not accepted: the verify gate `{failed.name}` (`{command}`) {described(failed)}.{limit}\n"
        f"The end of its output{cut}:\n```\n{failed.output_tail}\n```\n"
        f"Fix the cause, then call submit_result again; the gates run again after it (fix round {round_} of {rounds})."
    )


def fail_summary(failed: GateResult, rounds_done: int) -> str:
    rounds = f" after {rounds_done} fix round{'s' if rounds_done != 1 else ''}" if rounds_done else ""
    return f"verify gate {failed.name} {described(failed)}{rounds}"
