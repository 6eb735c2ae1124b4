"""Small helpers shared by the benchmarks: percentiles and the results table."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 50) * 1000, 4),
        "p99_ms": round(percentile(samples, 99) * 1000, 4),
        "mean_ms": round(statistics.fmean(samples) * 1000, 4),
    }


def machine() -> str:
    return f"{platform.machine()}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    result = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **result}
    path.write_text(json.dumps(result, indent=2))
    return path
