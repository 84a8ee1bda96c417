"""Benchmark: what importing the operator module costs DAG parsing.

Each module is imported in a fresh interpreter (after ``import airflow.sdk``, which every DAG file
pays anyway), several times, alternating the two so machine noise hits both alike. Printed side
by side in one run: the median extra import time and the number of extra modules loaded, for

- ``airflow_argo_eci.operators.argo`` (this provider), and
- ``airflow.providers.cncf.kubernetes.operators.pod`` (the cncf.kubernetes pod operator),

and their ratio.

    .venv/bin/python bench/import_cost.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
import airflow.sdk
before = set(sys.modules)
t0 = time.perf_counter()
import {module}
elapsed = time.perf_counter() - t0
heavy = sorted(m for m in ("kubernetes", "kubernetes_asyncio", "hera", "oss2") if m in sys.modules)
print(json.dumps({{"seconds": elapsed, "modules": len(set(sys.modules) - before), "heavy": heavy}}))
"""

MODULES = {
    "airflow_argo_eci.operators.argo": "this provider",
    "airflow.providers.cncf.kubernetes.operators.pod": "cncf.kubernetes pod operator",
}


def measure(module: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True,
                         check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    samples: dict[str, list[dict[str, object]]] = {m: [] for m in MODULES}
    for _ in range(args.rounds):
        for module in MODULES:
            samples[module].append(measure(module))
    medians = {}
    print(f"import cost after `import airflow.sdk`, median of {args.rounds} fresh interpreters")
    for module, label in MODULES.items():
        seconds = statistics.median(float(s["seconds"]) for s in samples[module])  # type: ignore[arg-type]
        modules = statistics.median(int(s["modules"]) for s in samples[module])  # type: ignore[call-overload]
        heavy = samples[module][-1]["heavy"]
        medians[module] = seconds
        print(f"  {label:32s} {seconds * 1000:8.1f} ms  {modules:6.0f} modules  heavy clients loaded: {heavy}")
    ours = medians["airflow_argo_eci.operators.argo"]
    theirs = medians["airflow.providers.cncf.kubernetes.operators.pod"]
    print(f"  ratio pod operator / this provider: {theirs / ours:6.1f}x")


if __name__ == "__main__":
    main()
