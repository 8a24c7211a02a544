"""Memory estimates checked before big allocations, so that a run too big for the machine stops at
once with a clear message instead of swapping for minutes or dying with MemoryError."""

from __future__ import annotations

from sectionseg.errors import InputError


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(needed: float, what: str) -> None:
    """InputError when ``needed`` bytes (an estimate) exceed the memory available now."""
    free = available_memory()
    if free is not None and needed > free:
        raise InputError(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory, but only {free / 2**30:.1f} GiB are available"
        )
