"""The agent executor's parts: pure decisions (stream assembly, conversation, transcript, paths) and thin I/O (the
model server, the workspace's files, git and commands)."""
