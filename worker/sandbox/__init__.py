"""The agent's sandbox: every process an agent starts runs confined (bubblewrap on Linux, Seatbelt on macOS).

`policy` decides, as pure functions of plain data, what a command may see and how it is limited (the bwrap argv, the
Seatbelt profile, the rlimits, what an exit means); `cgroup`, `process` and `sandbox` carry that out.
"""
