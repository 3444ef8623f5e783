# The image the controller Deployment and the worker DaemonSet run (manifests/). With Docker:
#   docker build -t ghcr.io/foreman-dev/foreman:0.1.0 .
# Where no registry can be reached (the project's CI machines), `make image` builds it with podman on a base made from
# Debian packages (tests/servers/build-image.sh), given as BASE. Any base with python3 (3.11 or newer) and its venv
# module will do.
ARG BASE=python:3.11-slim

# Foreman's dependencies alone, from pyproject.toml: the layer that installs them is rebuilt only when they change,
# not for each edit of the code or of pyproject's other tables
FROM ${BASE} AS requirements
COPY pyproject.toml /
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/pyproject.toml", "rb"))["project"]["dependencies"]))' \
      >/requirements.txt

FROM ${BASE}
# bubblewrap confines the agent's commands (README, "Security"); a base that has it already needs no package index
RUN command -v bwrap >/dev/null || { apt-get update && apt-get install -y --no-install-recommends bubblewrap \
      && rm -rf /var/lib/apt/lists/*; }
RUN useradd --uid 10001 --create-home foreman
# NB: a venv of its own, since Debian's python3 refuses pip installs into the system (externally managed)
RUN python3 -m venv /opt/foreman
ENV PATH=/opt/foreman/bin:$PATH
WORKDIR /src
COPY --from=requirements /requirements.txt ./
RUN pip install --no-cache-dir --quiet -r requirements.txt
COPY pyproject.toml README.md ./
COPY api api
COPY controller controller
COPY worker worker
COPY notifier notifier
COPY cli cli
RUN pip install --no-cache-dir --quiet --no-deps . && rm -rf /src
USER 10001
WORKDIR /home/foreman
ENTRYPOINT ["foreman"]
CMD ["--help"]
