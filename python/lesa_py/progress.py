"""A tiny stderr progress bar with counts and ETA (no dependencies).

    with Progress(total, "eval", quiet=args.quiet) as bar:
        bar.update(n)

On a terminal it redraws one line; otherwise it prints a line at most every 10 s.
"""
from __future__ import annotations

import sys
import time


def _fmt(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


class Progress:
    def __init__(self, total: int, desc: str = "", quiet: bool = False, stream=None, unit: str = "tok"):
        self.total, self.desc, self.quiet, self.unit = max(0, int(total)), desc, quiet, unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = self.shown = 0
        self.start = self.last = time.monotonic()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        rate = self.done / elapsed if elapsed > 0 else 0.0
        return (f"{self.desc} [{bar}] {self.done}/{self.total} {self.unit} {100 * frac:5.1f}% "
                f"{rate:.0f} {self.unit}/s elapsed {_fmt(elapsed)} ETA {_fmt(eta)}")

    def update(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        if self.quiet:
            return
        now = time.monotonic()
        if self.tty and (now - self.last >= 0.1 or self.done == self.total):
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()
            self.last = now
        elif not self.tty and now - self.last >= 10:
            print(self.line(), file=self.stream, flush=True)
            self.last, self.shown = now, self.done

    def close(self) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
        elif self.shown != self.done or self.done == 0:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
