"""Atomic file writes: a reader (or a killed run) never sees half a file, and nothing but a regular file
is ever replaced.

Policy (the writer is called with paths users type):
- The target must be absent or a regular file we may write. A directory, FIFO, device, socket or
  *symlink* is refused (`OutputError`), never replaced: replacing a symlink would silently turn it into a
  file, and writing through it would write somewhere the user did not name. Write to the link's target
  instead. A read-only file (no write permission bit, or not writable by us) is refused too.
- A new file gets the mode `open()` would give it (0666 minus the umask); a replaced file keeps its mode.
- Every OS failure of the write itself (no such folder, permission denied, disk full, a name too long,
  a NUL in the path) is one `OutputError` line naming the path.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from grounding_agent.errors import ConfigError, GroundingAgentError, OutputError

# Errors of the disk rather than of the caller's code: mapped to OutputError even inside the `with` body.
_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def _umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it is not thread-safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _describe(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device (free some space or write elsewhere)"
    return exc.strerror or str(exc)


def check_output_path(path: str | Path) -> Path:
    """The path as a `Path` if a file may be written there; else raise `OutputError` (one line).

    Checks what can be known before any work starts: the name, what already sits at the path, and that
    the nearest existing folder above it is a writable folder.
    """
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise OutputError(f"an output path must be a str or Path, got {type(path).__name__}") from None
    if not text.strip():
        raise OutputError("the output path is empty: give a file name")
    if "\x00" in text:
        raise OutputError(f"{text!r}: a path cannot contain a NUL character")
    path = Path(text)
    _check_existing(path, text)
    _check_folder(path.parent, text)
    return path


def _check_existing(path: Path, text: str) -> None:
    """What already sits at the path must be a regular file we may write (or nothing)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot write {text}: {_describe(exc)}") from None
    if st is not None:
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(path)
            raise OutputError(f"{text} is a symbolic link: write to its target ({target}) or remove it")
        if stat.S_ISDIR(mode):
            raise OutputError(f"{text} is a directory: give a file name inside it")
        if not stat.S_ISREG(mode):
            raise OutputError(f"{text} is not a regular file (a FIFO, device or socket): give a file path")
        # Root passes os.access for any file: a file with no write bit at all is read-only on purpose.
        if not mode & 0o222 or not os.access(path, os.W_OK):
            raise OutputError(f"{text} is read-only: make it writable or write elsewhere")


def _check_folder(folder: Path, text: str) -> None:
    """The nearest existing ancestor of `folder` must be a folder we can create files in."""
    probe = folder if str(folder) else Path(".")
    while True:
        try:
            st = os.stat(probe)
            break
        except FileNotFoundError:
            if probe.parent == probe:
                return
            probe = probe.parent
        except OSError as exc:
            raise OutputError(f"cannot write {text}: {_describe(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"cannot write {text}: {probe} is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {text}: permission denied in {probe}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix); move it into place on success, remove it on error.

    Example:
        with atomic_path("plot.png") as tmp:
            fig.savefig(tmp)

    Raises:
        OutputError: the path is not writable (see the module docstring), or the disk is full.
    """
    path = check_output_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_describe(exc)}") from None
    tmp = Path(name)
    try:
        try:
            existing = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            existing = 0o666 & ~_umask()  # mkstemp makes 0600; a new file gets what open() would give
        try:
            os.fchmod(fd, existing)
        finally:
            os.close(fd)
        try:
            yield tmp
        except OSError as exc:
            if exc.errno in _DISK_ERRNOS:
                raise OutputError(f"cannot write {path}: {_describe(exc)}") from None
            raise
        _check_existing(path, str(path))  # again: something may have appeared there while we wrote
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_describe(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)


# --- outputs vs inputs, and several outputs written together -----------------------------------------------

PathArg = str | os.PathLike


def same_file(a: PathArg, b: PathArg) -> bool:
    """Whether two paths name one file: the same inode (hard links, symlinks, case-folding file systems)
    when both exist, else the same resolved path (an output that does not exist yet, through a link)."""
    if not all(isinstance(p, (str, os.PathLike)) for p in (a, b)):  # an int would be read as a descriptor
        return False
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.normcase(os.path.realpath(a)) == os.path.normcase(os.path.realpath(b))
    except (OSError, TypeError, ValueError):  # a NUL in a name, a loop of links: cannot be checked as one
        return False


def refuse_inputs(
    outputs: Iterable[tuple[str, PathArg | None]],
    inputs: Iterable[tuple[str, PathArg | None]] = (),
    *,
    kind: str = "file",
) -> None:
    """Refuse, before any work, an output that would replace an input of the same command, or two outputs
    naming one file (the second would silently replace the first).

    `outputs` are (option, path) pairs, e.g. ("--srt", "clip.mp4"); `inputs` are (what it is, path), e.g.
    ("the input video", "clip.mp4") or ("the --transcript file", "t.json"). None paths are skipped.

    Raises:
        OutputError: e.g. "--srt clip.mp4 is the input video; choose another file".
    """
    named_inputs = [(what, path) for what, path in inputs if path is not None]
    seen: list[tuple[str, PathArg]] = []
    for option, path in outputs:
        if path is None:
            continue
        label = f"{option} {os.fsdecode(path)}".strip()
        for what, source in named_inputs:
            if same_file(path, source):
                raise OutputError(f"{label} is {what}; choose another {kind}")
        for other, earlier in seen:
            if same_file(path, earlier):
                raise OutputError(f"{label} is also {other} (one {kind}, two outputs); choose another {kind}")
        seen.append((label, path))


@contextmanager
def atomic_paths(paths: Sequence[PathArg]) -> Iterator[list[Path]]:
    """All or nothing for several outputs: yield one temporary path beside each target (same suffix); when
    the body succeeds every temporary is moved into place, when anything fails every temporary is removed
    and every existing target is left as it was.

    Example:
        with atomic_paths(["a.otio", "a.edl"]) as (otio_tmp, edl_tmp):
            write_otio(otio_tmp); write_edl(edl_tmp)     # an EDL failure leaves no a.otio

    Raises:
        OutputError: a path is not writable (see the module docstring), or two paths name one file.
    """
    targets = [check_output_path(p) for p in paths]
    refuse_inputs((("", t) for t in targets), ())
    temps: list[Path] = []
    try:
        for target in targets:
            temps.append(_temp_beside(target))
        try:
            yield list(temps)
        except GroundingAgentError as exc:
            raise _with_targets(exc, temps, targets) from None
        for target in targets:  # again: something may have appeared there while we wrote
            _check_existing(target, str(target))
        _replace_all(temps, targets)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


def _temp_beside(target: Path) -> Path:
    """An empty file beside `target` (same suffix: writers pick the format by it) with the mode the target
    has, or that open() would give a new file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as exc:
        raise OutputError(f"cannot write {target}: {_describe(exc)}") from None
    try:
        try:
            mode = os.stat(target).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return Path(name)


def _with_targets(exc: GroundingAgentError, temps: list[Path], targets: list[Path]) -> GroundingAgentError:
    """The error with each temporary name replaced by the target the user named (when its type allows)."""
    text = str(exc)
    for tmp, target in zip(temps, targets):
        text = text.replace(str(tmp), str(target))
    if text == str(exc):
        return exc
    try:
        return type(exc)(text)
    except TypeError:  # an error type with other constructor arguments: keep it as it was
        return exc


def _replace_all(temps: list[Path], targets: list[Path]) -> None:
    """Move every temporary onto its target; if one move fails, put back what the earlier ones replaced
    (from a hard link to each replaced file, taken just before)."""
    done: list[tuple[Path, bool, Path | None]] = []  # (target, it existed, a link to its old content)
    target = targets[0] if targets else Path()
    try:
        for tmp, target in zip(temps, targets):
            done.append((target, target.exists(), _link_beside(target)))
            os.replace(tmp, target)
    except OSError as exc:
        for old, existed, backup in reversed(done):
            if backup is not None:
                os.replace(backup, old)
            elif not existed:
                old.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write {target}: {_describe(exc)}; none of the outputs was written"
        ) from None
    finally:
        for _, _, backup in done:
            if backup is not None:
                backup.unlink(missing_ok=True)


def _link_beside(target: Path) -> Path | None:
    """A hard link to `target`'s current content beside it, or None (no file, or no hard links here)."""
    link = target.with_name(f".{target.name}.{secrets.token_hex(4)}.bak")
    try:
        os.link(target, link)
    except OSError:
        return None
    return link


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` as UTF-8 (an unpaired surrogate becomes "?": never invalid UTF-8 on disk)."""
    data = text.encode("utf-8", errors="replace")
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {_describe(exc)}") from None
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON (UTF-8); NaN and infinities are written as null.

    Python's `json` would write them as the bare words NaN / Infinity, which no strict JSON reader
    (jq, a browser's JSON.parse, serde) accepts; null is what "no number" is in JSON.

    Raises:
        ConfigError: `obj` holds something JSON cannot represent (a set, bytes, an object).
    """
    try:
        text = dumps_json(obj, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot write {path} as JSON: {exc}") from None
    return write_text_atomic(path, text)


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` (non-ASCII kept) that writes NaN and infinities as null: strict JSON, always."""
    return json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, **kwargs)


def _finite(obj: Any) -> Any:
    """`obj` with every non-finite float replaced by None (tuples become lists, as json writes them)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


# --- model sources (a hub id or a local folder) ------------------------------------------------------------

# The shape of a Hugging Face repo id ("name" or "org/name"), as the hub validates it.
_HUB_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,96}(?:/[A-Za-z0-9_.\-]{1,96})?$")


def check_model_source(ref: str | os.PathLike, option: str = "--model") -> str:
    """A model reference that can be loaded: an existing local folder, or something shaped like a hub id.

    A local path that is not there would otherwise reach the hub client and come back as its
    "Repo id must be in the form ..." (after a long server start, for `serve`): say what is wrong instead.

    Raises:
        ConfigError: a missing local path, a file where a folder is needed, or a folder without config.json.
    """
    try:
        text = os.fsdecode(os.fspath(ref))
    except TypeError:
        raise ConfigError(f"{option} must be a hub id or a folder, got {type(ref).__name__}") from None
    if "\x00" in text or not text.strip():
        raise ConfigError(f"{option} {text!r}: not a model folder or hub id")
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            raise ConfigError(f"{option} {text}: folder has no config.json (not a saved model)")
        return text
    if path.exists():
        raise ConfigError(f"{option} {text}: is a file; give the model's folder (config.json) or a hub id")
    looks_local = text.startswith(("/", "./", "../", "~", ".")) or text.count("/") > 1 or "\\" in text
    if looks_local or not _HUB_ID.match(text) or "--" in text or ".." in text:
        raise ConfigError(
            f"{option} {text}: no such folder (and not a hub id like 'Qwen/Qwen2-VL-2B-Instruct')"
        )
    return text


def check_output_dir(path: str | Path, option: str = "") -> Path:
    """The path as a `Path` if it is (or can become) a folder to write files in; else `OutputError`.

    Checks only, creates nothing: an existing folder we may write in, or an absent one whose nearest
    existing ancestor is a writable folder.
    """
    prefix = f"{option}: " if option else ""
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise OutputError(f"{prefix}a folder path must be a str or Path, got {type(path).__name__}") from None
    if not text.strip() or "\x00" in text:
        raise OutputError(f"{prefix}{text!r} is not a folder path")
    path = Path(text)
    try:
        st = os.stat(path)  # a symlink to a folder is a folder here
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"{prefix}cannot write in {text}: {_describe(exc)}") from None
    if st is None:
        try:
            _check_folder(path.parent, text)
        except OutputError as exc:
            raise OutputError(f"{prefix}{exc}") from None
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{prefix}{text} exists and is not a folder: give a new or existing folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{prefix}permission denied in {text}")
    return path


def make_output_dir(path: str | Path, option: str = "") -> Path:
    """`check_output_dir`, then create the folder (and its parents); OS failures are one `OutputError`."""
    path = check_output_dir(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        prefix = f"{option}: " if option else ""
        raise OutputError(f"{prefix}cannot create {path}: {_describe(exc)}") from None
    return path
