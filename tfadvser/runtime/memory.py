"""Peak resident memory of this process over a span of work (one attacker task).

Linux keeps the peak resident set size as VmHWM in /proc/self/status, and writing "5" to
/proc/self/clear_refs resets it to the current RSS (proc(5), Linux >= 4.0): the peak of a
task is then its own, not the process's since it started. Where the reset is refused, the
peak is the process's (`getrusage` ru_maxrss) and says so.
"""
from __future__ import annotations

import resource
from pathlib import Path

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak() -> str:
    """Start a new peak: "span" when the kernel reset it, "process" when it cannot (the
    peak read later then covers the whole process)."""
    try:
        _CLEAR.write_text("5")
        return "span"
    except OSError:
        return "process"


def peak_rss_mb() -> float:
    """The peak resident set size in MiB since `reset_peak` (or since the process began)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # kB
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux
