"""Run ffmpeg/ffprobe as subprocesses with a time limit and a bounded stderr tail.

ffmpeg-python builds the command lines; this module owns the process: it finds the
binary, enforces the timeout with a watchdog, drains stderr on a thread (so a chatty
ffmpeg never blocks on a full pipe) and turns failures into typed MediaErrors.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from mmrec.errors import FfmpegMissingError, FfmpegTimeoutError

log = logging.getLogger(__name__)

STDERR_TAIL_LINES = 20
# Seconds a decoder may go without progress (stderr report or output) while we wait on it.
STALL_S = 60.0
_PROGRESS_LINE = re.compile(r"^[a-z][a-z_0-9]*=")  # -progress lines: frame=12, speed= 3.1x
DEFAULT_PROBE_TIMEOUT_S = 30.0
# Input options for every ffmpeg/ffprobe call on a library file: only the file protocol,
# so a playlist-like file (HLS, ffconcat) cannot make ffmpeg reach the network or use
# pseudo-protocols (concat:, subfile:, data:); nested opens inherit the whitelist.
INPUT_OPTIONS: dict[str, str] = {"protocol_whitelist": "file"}
# Stands for the input in ffmpeg-python graphs; swapped for input_url() after compile,
# because ffmpeg-python hashes its arguments as UTF-8 and fails on undecodable names.
INPUT_PLACEHOLDER = "mmrec-input-placeholder"


def input_url(path: str | os.PathLike[str]) -> str:
    """The file as an ffmpeg input URL: `file:` + absolute path.

    Without the prefix a name like `concat:a.mp4`, `weird:name.mp4` or `-x.mp4` is read
    as a protocol or an option instead of the file.
    """
    return "file:" + os.path.abspath(os.fspath(path))


def input_args() -> list[str]:
    """INPUT_OPTIONS as command-line arguments, to put before `-i`."""
    return [arg for key, value in INPUT_OPTIONS.items() for arg in (f"-{key}", value)]


def with_input(args: Sequence[str], path: str | os.PathLike[str]) -> list[str]:
    """Compiled ffmpeg args with INPUT_PLACEHOLDER replaced by the file's input_url()."""
    url = input_url(path)
    return [url if a == INPUT_PLACEHOLDER else a for a in args]


def find_tool(tool: str) -> str:
    """Absolute path of ffmpeg/ffprobe, or FfmpegMissingError with the install hint."""
    found = shutil.which(tool)
    if found is None:
        raise FfmpegMissingError(tool)
    return found


def decode_timeout(duration: float | None) -> float:
    """Default wall-clock limit for decoding a file of this duration (sampled decode is
    much faster than real time; the limit only catches hangs)."""
    return 120.0 + 2.0 * (duration or 0.0)


def run_to_end(args: Sequence[str], path: str | Path, timeout: float) -> tuple[bytes, str, int]:
    """Run a short command to completion; return (stdout, stderr, returncode)."""
    try:
        proc = subprocess.run(
            list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        tail = _tail_text((e.stderr or b"").decode("utf-8", "replace"))
        raise FfmpegTimeoutError(path, f"{Path(args[0]).name} timed out after {timeout:.0f}s", tail) from e
    return proc.stdout, proc.stderr.decode("utf-8", "replace"), proc.returncode


def last_error_line(tail: str, path: str | os.PathLike[str], default: str) -> str:
    """The last line ffmpeg printed, without the `file:/abs/path: ` prefix it puts
    before messages about the input (the error already names the file)."""
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines:
        return default
    url = input_url(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    last = lines[-1].strip()
    return last[len(url) + 2 :] if last.startswith(url + ": ") else last


def _tail_text(text: str, n: int = STDERR_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


class StreamingProcess:
    """An ffmpeg process whose stdout is read incrementally by the caller (`read`).

    A watchdog kills it after ``timeout`` seconds in all, or after STALL_S seconds
    without progress while the caller waits for output: ffmpeg reports progress on
    stderr (``-progress``) as long as it moves through the input, so a stuck read (a
    FIFO, a dead network mount) is caught in seconds even when a long file allows a long
    ``timeout``; a caller busy elsewhere (ffmpeg blocked on a full pipe) is no stall. A
    thread drains stderr, feeding each line to ``on_stderr_line`` (which returns True
    for lines it consumed, e.g. showinfo timestamps) and keeping the last other lines as
    the error tail. Use as a context manager so the process is always reaped.
    """

    def __init__(
        self,
        args: Sequence[str],
        path: str | Path,
        timeout: float,
        on_stderr_line: Callable[[str], bool] | None = None,
    ) -> None:
        self.args = [args[0], "-progress", "pipe:2", *args[1:]]
        self.path = str(path)
        self.timeout = timeout
        self.stall_s = STALL_S
        self._on_line = on_stderr_line
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self.timed_out: str | None = None  # why the watchdog killed it
        self._last = time.monotonic()  # last sign of progress (stderr line or stdout bytes)
        self._waiting = False  # the caller is blocked in read()
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._stderr_done = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, daemon=True)
        self._watchdog.start()

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout  # a header may announce centuries: no Timer
        period = min(0.25, self.stall_s / 4)
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.timed_out = f"ffmpeg timed out after {self.timeout:.0f}s"
            elif self._waiting and now - self._last > self.stall_s:
                self.timed_out = (f"ffmpeg made no progress for {self.stall_s:.0f}s "
                                  "(stuck reading the input?)")
            if self.timed_out:
                self.proc.kill()
                return
            if self._stop.wait(min(period, deadline - now)):
                return

    def read(self, nbytes: int) -> bytes:
        """Up to nbytes of stdout (shorter only at EOF); waiting here counts for stalls."""
        self._waiting = True
        try:
            return read_exact(self.stdout, nbytes, self._progress)
        finally:
            self._waiting = False

    def _progress(self) -> None:
        self._last = time.monotonic()

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        try:
            for raw in self.proc.stderr:
                self._progress()
                line = raw.decode("utf-8", "replace").rstrip()
                if _PROGRESS_LINE.match(line):  # -progress key=value: activity, not an error
                    continue
                try:
                    if self._on_line is not None and self._on_line(line):
                        continue
                except Exception:  # a parser bug must not stop the draining (ffmpeg would block)
                    log.debug("stderr line handler failed on %r", line, exc_info=True)
                if line:
                    self._tail.append(line)
        finally:
            self._stderr_done.set()

    def wait_stderr(self, timeout: float | None = None) -> bool:
        """Block until stderr is fully drained (the process closed it)."""
        return self._stderr_done.wait(timeout)

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._tail)

    def finish(self) -> int:
        """Wait for exit; raise FfmpegTimeoutError if the watchdog fired."""
        code = self.proc.wait()
        self._stop.set()
        self._stderr_done.wait(5.0)
        if self.timed_out:
            raise FfmpegTimeoutError(self.path, self.timed_out, self.stderr_tail)
        return code

    def close(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> StreamingProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_exact(stream: IO[bytes], nbytes: int, on_chunk: Callable[[], None] | None = None) -> bytes:
    """Read up to nbytes, looping over short pipe reads; shorter only at EOF."""
    buf = bytearray()
    while len(buf) < nbytes:
        chunk = stream.read(nbytes - len(buf))
        if not chunk:
            break
        buf += chunk
        if on_chunk is not None:
            on_chunk()
    return bytes(buf)
