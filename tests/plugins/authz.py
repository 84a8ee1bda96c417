"""A test auth manager: Airflow's simple auth manager, except that user ``outsider`` may not read
(or edit) DAG ``secret_dag``. Everything else (tokens, roles, the UI cookie) is Airflow's own."""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

SECRET_DAG = "secret_dag"


class RestrictedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None) -> bool:
        if user.username == "outsider" and details is not None and details.id == SECRET_DAG:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
