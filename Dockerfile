# The image the controller Deployment and the worker DaemonSet run (manifests/). It cannot be built on the
# project's CI machines (no Docker engine there); build it wherever you build images:
#   docker build -t ghcr.io/foreman-dev/foreman:0.1.0 .
FROM python:3.11-slim
# bubblewrap confines the agent's commands (README, "Security"); the worker's Pod must allow user namespaces
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --create-home foreman
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api api
COPY controller controller
COPY worker worker
COPY notifier notifier
COPY cli cli
RUN pip install --no-cache-dir . && rm -rf /src
USER 10001
WORKDIR /home/foreman
ENTRYPOINT ["foreman"]
CMD ["--help"]
