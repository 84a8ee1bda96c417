"""Run the local OSS store on its own loopback port (HTTPS with the cluster certificate, or HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from airflow_argo_eci.local.httpserve import LOOPBACK, serve_in_thread
from airflow_argo_eci.local.oss.app import DEFAULT_REGION, OSSApp
from airflow_argo_eci.local.oss.bandwidth import MeteredApp, TokenBucket, TransferCounts
from airflow_argo_eci.local.oss.signature import Keyring

if TYPE_CHECKING:
    import oss2


class OSSServer:
    """The OSS store served in a background thread on the loopback interface.

    ``tls`` is ``(certfile, keyfile)`` (e.g. from ``local.tls.ensure_certificate``) to serve HTTPS;
    without it the store speaks plain HTTP. ``port=0`` picks a free port. ``security_tokens`` maps
    AccessKeyIds that are STS temporary keys to their security token; ``region`` is the region
    (e.g. ``cn-hangzhou``) that V4 signatures must be scoped to — give it to ``oss2.Bucket(...,
    region=...)`` along with ``oss2.AuthV4``. ``bandwidth`` (bytes per second, None: no cap) caps
    the bodies of every request and response together (:mod:`.bandwidth`); :attr:`transfer_counts`
    says how many body bytes went each way.
    """

    def __init__(self, root: Path | str, credentials: Mapping[str, str], *, port: int = 0,
                 tls: tuple[Path, Path] | None = None, security_tokens: Mapping[str, str] | None = None,
                 region: str = DEFAULT_REGION, bandwidth: int | None = None) -> None:
        Keyring(dict(credentials), dict(security_tokens or {}), region)  # fail here, not in start()
        self.root = Path(root)
        self.credentials = dict(credentials)
        self.security_tokens = dict(security_tokens or {})
        self.region = region
        self.tls = tls
        self.requested_port = port
        self.app: OSSApp | None = None
        self.bandwidth = bandwidth
        self._metered: MeteredApp | None = None
        self.port = 0
        self._server: Any = None
        self._thread: Any = None

    @property
    def endpoint(self) -> str:
        """The endpoint for ``oss2.Bucket`` (an IP, so oss2 uses path-style URLs)."""
        if not self.port:
            raise RuntimeError("the OSS store is not running; call start() first")
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    def start(self) -> OSSServer:
        """Open the store under ``root`` and start serving; returns self."""
        self.app = OSSApp(self.root, self.credentials, security_tokens=self.security_tokens, region=self.region)
        self._metered = MeteredApp(self.app, TokenBucket(self.bandwidth) if self.bandwidth else None)
        cert, key = (str(self.tls[0]), str(self.tls[1])) if self.tls else (None, None)
        self._server, self._thread, self.port = serve_in_thread(
            self._metered, port=self.requested_port, ssl_certfile=cert, ssl_keyfile=key)
        return self

    @property
    def transfer_counts(self) -> TransferCounts:
        """Body bytes received and sent since :meth:`start` (zeros before)."""
        return self._metered.counts if self._metered is not None else TransferCounts()

    def stop(self) -> None:
        """Stop serving (not waiting for idle keep-alive connections) and close the store."""
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(timeout=10)
            self._server = None
        if self.app is not None:
            self.app.close()
            self.app.multipart.close()
            self.app.storage.close()
            self.app = None
        self.port = 0

    def session(self) -> oss2.Session:
        """An ``oss2.Session`` that trusts this store's certificate (when serving HTTPS).

        ``trust_env`` is turned off because requests lets ``REQUESTS_CA_BUNDLE`` override
        ``Session.verify``; nothing but loopback is reached through this session.
        """
        import oss2

        session = oss2.Session()
        if self.tls:
            session.session.verify = str(self.tls[0])
            session.session.trust_env = False
        return session

    def __enter__(self) -> OSSServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
