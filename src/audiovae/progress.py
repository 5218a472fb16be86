"""Progress for long work: a tqdm bar on a terminal, periodic plain log lines otherwise."""
from __future__ import annotations

import logging
import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
log = logging.getLogger("audiovae")

LOG_EVERY_SECONDS = 10.0


def setup_logging(level: int = logging.INFO) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                            stream=sys.stderr)
    logging.getLogger("audiovae").setLevel(level)


class Progress:
    """A bar on a TTY; otherwise a log line at most every ``LOG_EVERY_SECONDS`` and at the end."""

    def __init__(self, total: int | None, desc: str, unit: str = "it"):
        self.total, self.desc, self.unit = total, desc, unit
        self.count = 0
        self.postfix = ""
        self._tty = sys.stderr.isatty()
        self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False) if self._tty else None
        self._last = time.monotonic()
        self._start = self._last

    def update(self, n: int = 1, **postfix) -> None:
        self.count += n
        if postfix:
            self.postfix = " ".join(f"{k}={_fmt(v)}" for k, v in postfix.items())
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= LOG_EVERY_SECONDS:
            self._last = now
            log.info("%s: %s %s", self.desc, self._position(), self.postfix)

    def _position(self) -> str:
        if self.total:
            return f"{self.count}/{self.total} {self.unit}"
        return f"{self.count} {self.unit}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        log.info("%s: done, %s in %.1fs %s", self.desc, self._position(),
                 time.monotonic() - self._start, self.postfix)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update()


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
