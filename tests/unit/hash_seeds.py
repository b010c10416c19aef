"""Run a snippet of Python in fresh interpreters with different hash seeds: what a cache key
or a plan is made of must not depend on string hashing or set order, which change from one
process to the next (PYTHONHASHSEED), never within one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SEEDS = ("0", "1", "4242")
ROOT = Path(__file__).resolve().parents[2]


def outputs_per_seed(code: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """Hash seed -> what ``code`` printed, each run in its own interpreter."""
    results = {}
    for seed in SEEDS:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **(env or {}), "PYTHONHASHSEED": seed},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        results[seed] = proc.stdout
    return results


def assert_same_across_processes(code: str, env: dict[str, str] | None = None) -> str:
    """``code`` prints the same non-empty text whatever the hash seed; that text."""
    results = outputs_per_seed(code, env)
    first = results[SEEDS[0]]
    assert first.strip(), "the snippet printed nothing"
    for seed, printed in results.items():
        assert printed == first, f"PYTHONHASHSEED={seed} differs from PYTHONHASHSEED={SEEDS[0]}"
    return first


def plan_json_across_processes(blueprint: Path) -> str:
    """The plan of ``blueprint`` as JSON, the same whatever the hash seed."""
    code = (
        "from pathlib import Path\n"
        "from composer.plan.load import load\n"
        "from composer.plan.plan import make_plan\n"
        f"print(make_plan(load(Path({str(blueprint)!r}))).to_json())\n"
    )
    return assert_same_across_processes(code).strip()
