"""Files in the workspace, opened so that no path the model writes can lead out of it.

Resolve-then-open races a process that swaps a directory for a symbolic link, and a path check misses a hard link
to a file outside. So every open here walks from a descriptor of the workspace's root, one component at a time, with
O_NOFOLLOW: a symbolic link is never followed by the kernel, only by us, lexically, after checking that its target
stays inside (at most MAX_LINKS of them); the file opened is then checked on its descriptor: a regular file with one
link. `.git` is not reachable at any depth, in any case, nor under the names that file systems fold into it (HFS+
ignorable code points, NTFS trailing dots and spaces and its short name `GIT~1`), whether a folder or a gitfile.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from foreman.worker.agent.errors import ToolError

MAX_LINKS = 40
MAX_PATH = 4096
MAX_DEPTH = 256
"""Components in a path the model writes."""
WALK_DEPTH = 64
"""Folders below the start that list_files and grep descend into at most."""
IGNORABLE = frozenset(
    [0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x206A, 0x206B, 0x206C, 0x206D,
     0x206E, 0x206F, 0xFEFF]
)  # fmt: skip
"""Code points HFS+ drops from a name (git's is_hfs_dotgit list): `.g\u200cit` is `.git` on a Mac."""
Mode = Literal["read", "write", "folder"]


def is_git_name(name: str) -> bool:
    """Whether a file system could take this name for `.git` (case-insensitive ones, HFS+, NTFS)."""
    folded = "".join(c for c in name if ord(c) not in IGNORABLE).casefold().rstrip(". ")
    return folded in (".git", "git~1")


def components(path: str) -> list[str]:
    """The model's path as components inside the workspace, or a ToolError saying why not."""
    if not isinstance(path, str):
        raise ToolError("a path must be a string")
    if "\0" in path:
        raise ToolError("a path must not contain NUL bytes")
    try:
        path.encode()
    except UnicodeEncodeError:
        raise ToolError(f"{path!r}: not valid UTF-8") from None
    if len(path) > MAX_PATH:
        raise ToolError(f"a path may have at most {MAX_PATH} characters")
    if path.startswith("/"):
        raise ToolError(f"{path}: absolute paths are not allowed; use a path relative to the workspace")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ToolError(f"{path}: '..' is not allowed; paths stay inside the workspace")
    if len(parts) > MAX_DEPTH:
        raise ToolError(f"a path may have at most {MAX_DEPTH} components")
    if any(is_git_name(part) for part in parts):
        raise ToolError(f"{path}: the repository's .git is not reachable by the tools")
    return parts


def link_target(inside: list[str], target: str, shown: str) -> list[str]:
    """Where a symbolic link in folder `inside` leads, as components from the workspace's root; a ToolError when it
    leads out (absolute, or `..` above the root) or into `.git`."""
    if target.startswith("/"):
        raise ToolError(f"{shown}: leads outside the workspace (through a symbolic link)")
    resolved = list(inside)
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise ToolError(f"{shown}: leads outside the workspace (through a symbolic link)")
            resolved.pop()
        elif is_git_name(part):
            raise ToolError(f"{shown}: the repository's .git is not reachable by the tools")
        else:
            resolved.append(part)
    return resolved


@dataclass(frozen=True)
class Opened:
    fd: int
    path: str
    """Where it really is, relative to the workspace (links resolved)."""
    size: int


def open_in(root: str, path: str, mode: Mode) -> Opened:
    """Open a file (read, or write: created with its folders) or folder of the workspace by the model's path."""
    parts = components(path)
    if not parts and mode != "folder":
        raise ToolError(f"{path}: is the workspace itself, not a file")
    hops = 0
    while True:
        resolved = _walk(root, parts, mode, path)
        if isinstance(resolved, Opened):
            return resolved
        hops += 1
        if hops > MAX_LINKS:
            raise ToolError(f"{path}: too many symbolic links")
        parts = resolved


def _walk(root: str, parts: list[str], mode: Mode, shown: str) -> Opened | list[str]:
    """One walk from the root: the opened file, or the components to walk again after a symbolic link."""
    current = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name in enumerate(parts):
            last = index == len(parts) - 1
            try:
                info = os.stat(name, dir_fd=current, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is not None and stat.S_ISLNK(info.st_mode):
                target = os.readlink(name, dir_fd=current)
                return [*link_target(parts[:index], target, shown), *parts[index + 1 :]]
            if last and mode != "folder":
                return _open_file(current, name, mode, "/".join(parts), shown)
            if info is None:
                if mode != "write":
                    raise ToolError(f"{shown}: no such file or directory")
                os.mkdir(name, 0o755, dir_fd=current)
            following = _open_folder(current, name, shown)
            os.close(current)
            current = following
        return Opened(os.dup(current), "/".join(parts) or ".", 0)
    finally:
        os.close(current)


def _open_folder(parent: int, name: str, shown: str) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except NotADirectoryError:
        raise ToolError(f"{shown}: {name} is not a directory") from None
    except OSError as error:  # ELOOP: swapped for a link since we looked
        raise ToolError(f"{shown}: {error.strerror}") from None


def _open_file(parent: int, name: str, mode: Mode, resolved: str, shown: str) -> Opened:
    flags = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NB: O_NONBLOCK: a FIFO must not hang the open
    flags |= os.O_RDWR | os.O_CREAT if mode == "write" else os.O_RDONLY
    try:
        fd = os.open(name, flags, 0o644, dir_fd=parent)
    except FileNotFoundError:
        raise ToolError(f"{shown}: no such file") from None
    except IsADirectoryError:
        raise ToolError(f"{shown}: is a directory") from None
    except OSError as error:
        raise ToolError(f"{shown}: {error.strerror}") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "is a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
    elif info.st_nlink > 1:
        problem = f"has {info.st_nlink} hard links; a file with more than one link is refused (it may be outside)"
    if problem:
        os.close(fd)
        raise ToolError(f"{shown}: {problem}")
    os.set_blocking(fd, True)
    return Opened(fd, resolved, info.st_size)


def open_file_at(folder: int, name: str, shown: str) -> Opened:
    """A file of a folder already open (a walk's), for reading; never through a link."""
    return _open_file(folder, name, "read", shown, shown)


@dataclass(frozen=True)
class Entry:
    path: str
    """Relative to the folder the walk started in."""
    folder: bool
    depth: int


def walk(start: int, *, depth: int = WALK_DEPTH) -> Iterator[tuple[Entry, int]]:
    """Every entry under a folder descriptor, in name order, depth first, never through a link nor into `.git`;
    iterative (10,000 nested folders cannot exhaust the stack), at most `depth` below, with one descriptor open per
    level at most. Yields each entry with the descriptor of its folder (valid while the caller looks at it)."""
    pending: list[list[str]] = [[]]
    while pending:
        parts = pending.pop()
        try:
            folder = _reopen(start, parts)
        except ToolError:
            continue  # swapped or gone since it was listed
        try:
            with os.scandir(folder) as entries:
                listed = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
            below = []
            for name, is_folder in listed:
                if is_git_name(name):
                    continue
                yield Entry("/".join([*parts, name]), is_folder, len(parts)), folder
                if is_folder and len(parts) + 1 < depth:
                    below.append([*parts, name])
            pending.extend(reversed(below))
        finally:
            os.close(folder)


def _reopen(start: int, parts: list[str]) -> int:
    current = os.dup(start)
    for name in parts:
        try:
            following = _open_folder(current, name, "/".join(parts))
        finally:
            os.close(current)
        current = following
    return current


def read_bytes(fd: int, limit: int) -> bytes:
    """At most `limit` bytes from the start of an open file (a file that grows while read stops at the limit)."""
    chunks = []
    left = limit
    while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        offset += os.pwrite(fd, view[offset:], offset)


def remove_tree(path: str) -> None:
    """Delete a folder and all in it, however deep (an agent can leave 10,000 nested folders, which a recursive
    delete cannot take and a path-based one cannot name): each folder's contents move up into the top folder, one
    level at a time, with two descriptors open at most; links are removed, never followed."""
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    moved = 0
    try:
        while names := os.listdir(top):
            for name in names:
                if not stat.S_ISDIR(os.stat(name, dir_fd=top, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=top)
                    continue
                inner = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=top)
                try:
                    for child in os.listdir(inner):
                        moved += 1
                        os.rename(child, f".removing-{moved}", src_dir_fd=inner, dst_dir_fd=top)
                finally:
                    os.close(inner)
                os.rmdir(name, dir_fd=top)
    finally:
        os.close(top)
    os.rmdir(path)
