"""A stand-in agent for the `command` executor tests: its behaviour is chosen by payload.inputs.mode."""

import json
import os
import signal
import sys
import time

payload = json.load(sys.stdin)
inputs = payload.get("inputs", {})
if "log" in inputs:  # every execution is recorded here, by the executed process itself
    with open(inputs["log"], "a") as log:
        log.write(f"{os.environ['FOREMAN_TASK_NAMESPACE']}/{os.environ['FOREMAN_TASK_NAME']}\n")
print("prompt:", os.environ.get("FOREMAN_PROMPT", ""))
mode = inputs.get("mode", "go")
if mode == "nogo":
    sys.exit(1)
if mode == "envelope":
    print(
        json.dumps({"schemaVersion": "foreman.v1", "kind": "review", "verdict": "GATE-PASS", "summary": "gates passed"})
    )
if mode == "malformed":
    print(json.dumps({"schemaVersion": "foreman.v0", "verdict": "GO"}))
if mode == "killed":
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "sleep":
    with open(inputs["pidfile"], "w") as pidfile:
        pidfile.write(str(os.getpid()))
    time.sleep(60)
