"""The stack's log server: Airflow's own log-serving app, bound to 127.0.0.1.

Airflow 3.3's scheduler and triggerer start their log servers on every interface (``host=""``,
no setting changes it), so the stack runs them with ``--skip-serve-logs`` and serves the same
folder here instead, on loopback, on the port both ``[logging] worker_log_server_port`` and
``trigger_log_server_port`` name. Run as ``python -m airflow_argo_eci.stack.logserver PORT``.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m airflow_argo_eci.stack.logserver PORT", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run("airflow.utils.serve_logs.log_server:get_app", factory=True, host="127.0.0.1",
                port=int(args[0]), log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
