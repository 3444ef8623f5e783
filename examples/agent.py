"""A minimal agent for the `command` executor: reads the payload on stdin, prints a foreman.v1 envelope.

    foreman worker --command "python3 examples/agent.py"

Replace the body with a call to your model or agent framework; keep the contract: exit 0 for GO, non-zero for
NO-GO, or print an envelope as the last JSON line of stdout to say more.
"""

import json
import os
import sys

payload = json.load(sys.stdin)
prompt = payload.get("prompt") or os.environ.get("FOREMAN_PROMPT", "")
print(f"working on: {prompt}")
envelope = {
    "schemaVersion": "foreman.v1",
    "kind": os.environ["FOREMAN_TASK_KIND"],
    "verdict": "GO",
    "summary": f"{os.environ['FOREMAN_TASK_NAME']} done on {os.environ['FOREMAN_NODE']}",
    "extra": {"inputs": payload.get("inputs", {})},
}
print(json.dumps(envelope))
