"""``SyncPrefectClient``: Prefect's documented task-run client members, one short method each.

Every method checks its arguments, builds a request Struct, encodes it once, sends it
through the transport and decodes the reply with a typed decoder built at import time.
Bad arguments raise before anything is sent.

Thread safety: one client may be shared by many threads; see ``_http._transport``.
"""

import logging
import os
import threading
import uuid
import weakref
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Type,
    Union,
)

import requests

from ._calls import _exactly_once
from ._calls._arguments import (
    MAX_KEY_BYTES,
    MAX_NAME_BYTES,
    as_uuid,
    bounded,
    count,
    instance_or_none,
    optional_str,
    state_create,
    strings,
    task_policy,
)
from ._calls._features import FeatureNotSupported, unsupported_features
from ._calls._versions import major_version, version_key
from ._exceptions import (
    ClientClosedError,
    PrefectHTTPStatusError,
    RequestValidationError,
    redact_url,
)
from ._http._connection import ConnectionCheck
from ._http._retry import PrefectRetry
from ._http._transport import Transport
from ._models._bodies import SetTaskRunState, TaskRunCreate, TaskRunsQuery, TaskRunUpdate
from ._models._codec import BodyEncoder, ReplyDecoder
from ._models._enums import TaskRunSort
from ._models._filters import DeploymentFilter, FlowFilter, FlowRunFilter, TaskRunFilter
from ._models._schemas import OrchestrationResult, State, TaskInput, TaskRun
from ._models._states import Pending
from ._settings._load import Settings, load_settings
from ._version import PREFECT_VERSION

if TYPE_CHECKING:
    from ._local_server import LocalServer

__all__ = ["SyncPrefectClient"]

logger = logging.getLogger("orchestration_client")

_task_run: ReplyDecoder[TaskRun] = ReplyDecoder(TaskRun, "TaskRun")
_task_runs: ReplyDecoder[List[TaskRun]] = ReplyDecoder(List[TaskRun], "list of TaskRun")
_states: ReplyDecoder[List[State]] = ReplyDecoder(List[State], "list of State")
_result: ReplyDecoder[OrchestrationResult] = ReplyDecoder(
    OrchestrationResult, "OrchestrationResult"
)
_version_string: ReplyDecoder[str] = ReplyDecoder(str, "version string")

_create_body = BodyEncoder(TaskRunCreate)
_update_body = BodyEncoder(TaskRunUpdate)
_set_state_body = BodyEncoder(SetTaskRunState)
_query_body = BodyEncoder(TaskRunsQuery)


def _let_go(server: "LocalServer", pid: int) -> None:
    """A collected client's server is let go, in the process that adopted it only."""
    if os.getpid() == pid:
        server.stop()


class SyncPrefectClient:
    """A synchronous client for the task-run part of the Prefect 3 REST API.

    ``api`` is the API root URL (it includes ``/api``), or an ASGI application such as
    Prefect's ``create_app()``, which is then served on 127.0.0.1 from a background thread
    until the client closes. Arguments given here win over the environment; the
    environment (``PREFECT_API_*``, ``PREFECT_CLIENT_*``) supplies timeouts, retries, TLS,
    CSRF and custom headers. Use it as a context manager, or just call its methods.
    """

    def __init__(
        self,
        api: Any,
        *,
        auth_string: Optional[str] = None,
        api_key: Optional[str] = None,
        api_version: Optional[str] = None,
        httpx_settings: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self._setup(
            api,
            settings=load_settings(),
            auth_string=auth_string,
            api_key=api_key,
            api_version=api_version,
            httpx_settings=httpx_settings,
        )

    @classmethod
    def _from_settings(
        cls,
        api: str,
        settings: Settings,
        httpx_settings: Optional[Mapping[str, Any]] = None,
        check_new_connection: Optional[ConnectionCheck] = None,
    ) -> "SyncPrefectClient":
        """A client from settings already loaded (``get_client`` reads them once);
        ``check_new_connection`` vets each new connection (see ``_http._connection``)."""
        client = cls.__new__(cls)
        client._setup(
            api,
            settings=settings,
            auth_string=settings.auth_string,
            api_key=settings.api_key,
            api_version=None,
            httpx_settings=httpx_settings,
            check_new_connection=check_new_connection,
        )
        return client

    def _setup(
        self,
        api: Any,
        *,
        settings: Settings,
        auth_string: Optional[str],
        api_key: Optional[str],
        api_version: Optional[str],
        httpx_settings: Optional[Mapping[str, Any]],
        check_new_connection: Optional[ConnectionCheck] = None,
    ) -> None:
        self._depth = 0
        self._closed = False
        self._lock = threading.Lock()
        self._server: Optional[LocalServer] = None
        self._server_version: Optional[str] = None  # learned by api_version()
        if httpx_settings is not None and not isinstance(httpx_settings, Mapping):
            raise TypeError(
                f"httpx_settings must be a mapping, got {type(httpx_settings).__name__}"
            )
        if isinstance(api, str):
            if httpx_settings and "app" in httpx_settings:
                raise ValueError("An 'app' in httpx_settings cannot be used with an API URL")
        else:
            from ._local_server import serve_app

            self._server = serve_app(api)
            api = self._server.api_url
        self._transport = Transport(
            api,
            settings=settings,
            api_key=optional_str(api_key, "api_key"),
            auth_string=optional_str(auth_string, "auth_string"),
            api_version=optional_str(api_version, "api_version"),
            httpx_settings=httpx_settings,
            check_new_connection=check_new_connection,
        )

    # ---- lifecycle --------------------------------------------------------------------------

    def _adopt_server(self, server: "LocalServer") -> None:
        """Tell ``server`` when this client closes (used by ``get_client``): a server of
        this process then stops; the shared one learns this process is done with it.
        A client dropped unclosed does the same when it is collected (only in the process
        that made it: a forked child's copy leaves the parent's server alone)."""
        self._server = server
        weakref.finalize(self, _let_go, server, os.getpid()).atexit = False

    def __enter__(self) -> "SyncPrefectClient":
        with self._lock:
            if self._closed:
                raise ClientClosedError(
                    "The client cannot be started again after closing. Create a new client."
                )
            self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth > 0:
                return
            self._closed = True
        self._transport.close()
        if self._server is not None:
            self._server.stop()

    def __repr__(self) -> str:
        transport = getattr(self, "_transport", None)
        shown = redact_url(transport.base_url + "/") if transport else "<not configured>"
        return f"SyncPrefectClient(api_url={shown!r})"

    # ---- server and versions --------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The API root this client talks to, with a trailing slash."""
        return self._transport.base_url + "/"

    def api_healthcheck(self) -> Optional[Exception]:
        """``None`` if ``GET /health`` succeeds, else the exception; never raises."""
        try:
            self._transport.request("GET", "/health")
        except Exception as exc:
            return exc
        return None

    def hello(self) -> requests.Response:
        """``GET /hello``; returns the raw response (its JSON is a greeting string)."""
        return self._transport.request("GET", "/hello")

    def api_version(self) -> str:
        """The Prefect version the server runs (``GET /admin/version``), e.g. ``"3.9.1"``."""
        version = _version_string.decode(self._transport.request("GET", "/admin/version"))
        self._server_version = version
        return version

    def client_version(self) -> str:
        """The Prefect version whose client this package mirrors; no request is made."""
        return PREFECT_VERSION

    def raise_for_api_version_mismatch(self) -> None:
        """Raise ``RuntimeError`` if the server's major Prefect version differs from
        ``client_version()``, or the server can't be reached; warn if it is older.
        Prefect Cloud is not checked."""
        if self._transport.is_cloud:
            return
        try:
            server_version = self.api_version()
        except Exception as exc:
            if (
                isinstance(exc, PrefectHTTPStatusError) and exc.status_code == 401
            ) or "Unauthorized" in str(exc):
                raise
            raise RuntimeError(f"Failed to reach API at {redact_url(self.api_url)}") from exc
        client_version = self.client_version()
        if major_version(server_version) != major_version(client_version):
            raise RuntimeError(
                f"Found incompatible versions: client: {client_version}, server: "
                f"{server_version}. Major versions must match."
            )
        if version_key(server_version) < version_key(client_version):
            logger.warning(
                "Your Prefect server runs %s, older than the %s this client is built for; "
                "some behaviour may differ. Upgrade the server to %s or later.",
                server_version,
                client_version,
                client_version,
            )

    # ---- task runs ------------------------------------------------------------------------

    def create_task_run(
        self,
        task: Any,
        flow_run_id: Optional[Union[uuid.UUID, str]],
        dynamic_key: Any,
        id: Optional[Union[uuid.UUID, str]] = None,
        name: Optional[str] = None,
        extra_tags: Optional[Iterable[str]] = None,
        state: Optional[State] = None,
        task_inputs: Optional[Dict[str, List[TaskInput]]] = None,
    ) -> TaskRun:
        """Create a task run, or return the existing one with the same
        ``(flow_run_id, task.task_key, dynamic_key)``; its state is then left unchanged, and
        so is its id, even when ``id`` asked for another (a warning is logged).

        ``task`` is a ``schemas.Task`` or any object with ``task_key``, ``tags``,
        ``version``, ``retries``, ``retry_delay_seconds`` and ``retry_jitter_factor``
        (a ``prefect`` Task works). ``state`` defaults to ``Pending()``.
        """
        try:
            task_key, tags, version = task.task_key, task.tags, task.version
            policy = task_policy(task)
        except AttributeError as exc:
            raise RequestValidationError(
                "task must be an orchestration_client.schemas.Task or have task_key, tags, "
                f"version, retries, retry_delay_seconds and retry_jitter_factor: {exc}"
            ) from None
        if not isinstance(task_key, str) or not task_key:
            raise RequestValidationError(f"task.task_key must be a non-empty str, got {task_key!r}")
        bounded(task_key, "task.task_key", MAX_KEY_BYTES)
        if task_inputs is not None and not isinstance(task_inputs, dict):
            raise RequestValidationError(
                f"task_inputs must be a dict, got {type(task_inputs).__name__}"
            )
        body = TaskRunCreate(
            state=state_create(Pending() if state is None else state),
            name=bounded(optional_str(name, "name"), "name", MAX_NAME_BYTES),
            flow_run_id=None if flow_run_id is None else as_uuid(flow_run_id, "flow_run_id"),
            task_key=task_key,
            dynamic_key=bounded(str(dynamic_key), "dynamic_key", MAX_KEY_BYTES) or "",
            task_version=optional_str(version, "task.version"),
            empirical_policy=policy,
            tags=list(
                dict.fromkeys([*strings(tags, "task.tags"), *strings(extra_tags, "extra_tags")])
            ),
            task_inputs=task_inputs or {},
        )
        if id is not None:
            body.id = as_uuid(id, "id")
        content = _create_body.encode(body, "create_task_run arguments")
        run = _task_run.decode(self._post_checking_features("/task_runs/", content))
        if id is not None and run.id != body.id:
            logger.warning(
                "create_task_run asked for id %s, but the server already had run %s for this "
                "(flow_run_id, task_key, dynamic_key) and returned it; use the returned id",
                body.id,
                run.id,
            )
        return run

    def _post_checking_features(self, path: str, content: bytes) -> requests.Response:
        """POST; a 422 refusing a feature the server is too old for becomes
        ``FeatureNotSupported``. The server's version is the one ``api_version()`` learned;
        if it never ran, it is asked for once, only on that failure path, to name it."""
        try:
            return self._transport.request("POST", path, content=content)
        except PrefectHTTPStatusError as exc:
            if exc.status_code != 422 or not unsupported_features(exc.detail, self._server_version):
                raise
            version = self._server_version
            if version is None:
                try:
                    version = self.api_version()
                except Exception:
                    version = None
            features = unsupported_features(exc.detail, version)
            if not features:
                raise
            raise FeatureNotSupported(
                exc.response,
                features=[(feature.name, feature.since) for feature in features],
                server_version=version,
                retries=exc.retries,
            ) from None

    def read_task_run(self, task_run_id: Union[uuid.UUID, str]) -> TaskRun:
        """One task run by id; ``ObjectNotFound`` if there is none."""
        path = f"/task_runs/{as_uuid(task_run_id, 'task_run_id')}"
        return _task_run.decode(self._transport.request("GET", path))

    def read_task_runs(
        self,
        *,
        flow_filter: Optional[FlowFilter] = None,
        flow_run_filter: Optional[FlowRunFilter] = None,
        task_run_filter: Optional[TaskRunFilter] = None,
        deployment_filter: Optional[DeploymentFilter] = None,
        sort: Optional[Union[TaskRunSort, str]] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = 0,
    ) -> List[TaskRun]:
        """Task runs matching every given filter, in ``sort`` order (server default
        ``ID_DESC``), at most ``limit`` (server default and maximum: 200) from ``offset``
        (``None`` means 0, as in Prefect)."""
        if sort is not None and not isinstance(sort, TaskRunSort):
            if not isinstance(sort, str):
                raise RequestValidationError(
                    f"sort must be a TaskRunSort, got {type(sort).__name__}"
                )
            try:
                sort = TaskRunSort(sort)
            except ValueError:
                raise RequestValidationError(
                    f"sort must be one of {', '.join(s.value for s in TaskRunSort)}; got {sort!r}"
                ) from None
        body = TaskRunsQuery(
            flows=instance_or_none(flow_filter, FlowFilter, "flow_filter"),
            flow_runs=instance_or_none(flow_run_filter, FlowRunFilter, "flow_run_filter"),
            task_runs=instance_or_none(task_run_filter, TaskRunFilter, "task_run_filter"),
            deployments=instance_or_none(deployment_filter, DeploymentFilter, "deployment_filter"),
            sort=sort,
            limit=count(limit, "limit", allow_none=True),
            offset=count(offset, "offset", allow_none=True) or 0,
        )
        content = _query_body.encode(body, "read_task_runs filters")
        return _task_runs.decode(self._post_checking_features("/task_runs/filter", content))

    def set_task_run_name(
        self, task_run_id: Union[uuid.UUID, str], name: Optional[str]
    ) -> requests.Response:
        """Rename a task run; ``None`` lets the server pick a random name. Returns the raw
        204 response."""
        path = f"/task_runs/{as_uuid(task_run_id, 'task_run_id')}"
        checked = bounded(optional_str(name, "name"), "name", MAX_NAME_BYTES)
        content = _update_body.encode(TaskRunUpdate(name=checked), "name")
        return self._transport.request("PATCH", path, content=content)

    def set_task_run_state(
        self, task_run_id: Union[uuid.UUID, str], state: State, force: bool = False
    ) -> OrchestrationResult:
        """Propose ``state`` for a task run; the server accepts, rejects, aborts or asks to
        wait, as the returned result's ``status`` and ``details`` say. ``force=True`` skips
        the orchestration rules. As in Prefect, ``state.state_details.task_run_id`` is set.

        Applied at most once: the proposal carries a fresh ``state_details.transition_id``
        (unless ``state`` has one), and after a failure that may have followed the server's
        commit (a reset, a 502) the run's history is read before proposing again. When that
        can't settle it, ``StateChangeOutcomeUnknown`` is raised (see ``_calls._exactly_once``)."""
        run_id = as_uuid(task_run_id, "task_run_id")
        if not isinstance(force, bool):
            raise RequestValidationError(f"force must be a bool, got {type(force).__name__}")
        proposed = state_create(state)
        state.state_details.task_run_id = run_id
        transition_id = _exactly_once.stamp(proposed)
        content = _set_state_body.encode(
            SetTaskRunState(state=proposed, force=force), "set_task_run_state arguments"
        )
        transport, path = self._transport, f"/task_runs/{run_id}/set_state"

        def send(retries: PrefectRetry) -> OrchestrationResult:
            return _result.decode(
                transport.request("POST", path, content=content, idempotent=False, retries=retries)
            )

        def read_history(retries: PrefectRetry) -> _exactly_once.History:
            params = {"task_run_id": str(run_id)}
            reply = transport.request(
                "GET", "/task_run_states/", params=params, idempotent=False, retries=retries
            )
            return _states.decode(reply), reply.headers.get("Date")

        return _exactly_once.set_state_once(
            task_run_id=run_id,
            proposed=proposed,
            transition_id=transition_id,
            send=send,
            read_history=read_history,
            budget=transport.retry_policy,
        )

    def read_task_run_states(self, task_run_id: Union[uuid.UUID, str]) -> List[State]:
        """The state history of a task run, oldest first; ``[]`` for an unknown id."""
        params = {"task_run_id": str(as_uuid(task_run_id, "task_run_id"))}
        return _states.decode(self._transport.request("GET", "/task_run_states/", params=params))
