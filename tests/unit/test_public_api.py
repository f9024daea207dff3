"""The public surface is a contract: pin every ``__all__`` and the client's members."""

import importlib
import inspect
import pathlib

import pytest

import orchestration_client
from orchestration_client import SyncPrefectClient, get_client

PUBLIC = {
    "orchestration_client": ["SyncPrefectClient", "__version__", "get_client"],
    "orchestration_client.schemas": [
        "Constant", "FlowRunResult", "OrchestrationResult", "Parameter", "SetStateStatus",
        "State", "StateAbortDetails", "StateAcceptDetails", "StateDetails",
        "StateRejectDetails", "StateType", "StateWaitDetails", "Task", "TaskRun",
        "TaskRunPolicy", "TaskRunResult",
    ],
    "orchestration_client.sorting": ["TaskRunSort"],
    "orchestration_client.states": [
        "AwaitingConcurrencySlot", "AwaitingRetry", "Cancelled", "Cancelling", "Completed",
        "Crashed", "Failed", "InfrastructurePending", "Late", "Paused", "Pending", "Retrying",
        "Running", "Scheduled", "State", "Submitting", "Suspended",
    ],
    "orchestration_client.exceptions": [
        "APIConnectionError", "APITimeoutError", "ClientClosedError", "FeatureNotSupported",
        "ObjectAlreadyExists", "ObjectNotFound", "OrchestrationClientError", "PrefectException",
        "PrefectHTTPStatusError", "ReplyTooLargeError", "RequestValidationError",
        "ResponseDecodeError", "StateChangeOutcomeUnknown",
    ],
    "orchestration_client.filters": [
        "DeploymentFilter", "DeploymentFilterConcurrencyLimit", "DeploymentFilterId",
        "DeploymentFilterName", "DeploymentFilterTags", "DeploymentFilterWorkQueueName",
        "FlowFilter", "FlowFilterId", "FlowFilterName", "FlowFilterTags", "FlowRunFilter",
        "FlowRunFilterCreatedBy", "FlowRunFilterDeploymentId", "FlowRunFilterEndTime",
        "FlowRunFilterExpectedStartTime", "FlowRunFilterFlowVersion", "FlowRunFilterId",
        "FlowRunFilterIdempotencyKey", "FlowRunFilterName", "FlowRunFilterNextScheduledStartTime",
        "FlowRunFilterParentFlowRunId", "FlowRunFilterParentTaskRunId", "FlowRunFilterStartTime",
        "FlowRunFilterState", "FlowRunFilterStateName", "FlowRunFilterStateType",
        "FlowRunFilterTags", "FlowRunFilterWorkQueueName", "Operator", "TaskRunFilter",
        "TaskRunFilterEndTime", "TaskRunFilterFlowRunId", "TaskRunFilterId", "TaskRunFilterName",
        "TaskRunFilterStartTime", "TaskRunFilterState", "TaskRunFilterStateName",
        "TaskRunFilterStateType", "TaskRunFilterSubFlowRuns", "TaskRunFilterTags",
    ],
}  # fmt: skip

DOCUMENTED_MEMBERS = {
    "api_url", "api_healthcheck", "hello", "api_version", "client_version",
    "raise_for_api_version_mismatch", "set_task_run_name", "create_task_run",
    "read_task_run", "read_task_runs", "set_task_run_state", "read_task_run_states",
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_all_is_pinned_and_importable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert sorted(module.__all__) == sorted(PUBLIC[module_name])
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_private_modules_start_with_an_underscore() -> None:
    package = pathlib.Path(orchestration_client.__file__).parent
    public = {name.rsplit(".", 1)[-1] for name in PUBLIC} - {"orchestration_client"}
    for path in package.glob("*.py"):
        assert path.stem in public | {"__init__"} or path.stem.startswith("_"), path.name


def test_py_typed_is_shipped() -> None:
    assert (pathlib.Path(orchestration_client.__file__).parent / "py.typed").exists()


def test_client_has_exactly_the_documented_public_members() -> None:
    public = {name for name in vars(SyncPrefectClient) if not name.startswith("_")}
    assert public == DOCUMENTED_MEMBERS
    assert isinstance(inspect.getattr_static(SyncPrefectClient, "api_url"), property)
    assert hasattr(SyncPrefectClient, "__enter__") and hasattr(SyncPrefectClient, "__exit__")


def test_signatures_match_prefect() -> None:
    def params(function: object) -> list:
        return [
            (p.name, p.kind.name, p.default)
            for p in inspect.signature(function).parameters.values()
        ]  # type: ignore[arg-type]

    empty = inspect.Parameter.empty
    assert params(SyncPrefectClient.create_task_run)[1:] == [
        ("task", "POSITIONAL_OR_KEYWORD", empty),
        ("flow_run_id", "POSITIONAL_OR_KEYWORD", empty),
        ("dynamic_key", "POSITIONAL_OR_KEYWORD", empty),
        ("id", "POSITIONAL_OR_KEYWORD", None),
        ("name", "POSITIONAL_OR_KEYWORD", None),
        ("extra_tags", "POSITIONAL_OR_KEYWORD", None),
        ("state", "POSITIONAL_OR_KEYWORD", None),
        ("task_inputs", "POSITIONAL_OR_KEYWORD", None),
    ]
    assert params(SyncPrefectClient.read_task_runs)[1:] == [
        (name, "KEYWORD_ONLY", None)
        for name in (
            "flow_filter",
            "flow_run_filter",
            "task_run_filter",
            "deployment_filter",
            "sort",
            "limit",
        )
    ] + [("offset", "KEYWORD_ONLY", 0)]
    assert params(SyncPrefectClient.set_task_run_state)[1:] == [
        ("task_run_id", "POSITIONAL_OR_KEYWORD", empty),
        ("state", "POSITIONAL_OR_KEYWORD", empty),
        ("force", "POSITIONAL_OR_KEYWORD", False),
    ]
    assert params(SyncPrefectClient.__init__)[1:] == [
        ("api", "POSITIONAL_OR_KEYWORD", empty),
        ("auth_string", "KEYWORD_ONLY", None),
        ("api_key", "KEYWORD_ONLY", None),
        ("api_version", "KEYWORD_ONLY", None),
        ("httpx_settings", "KEYWORD_ONLY", None),
    ]
    assert params(get_client) == [
        ("httpx_settings", "POSITIONAL_OR_KEYWORD", None),
        ("sync_client", "POSITIONAL_OR_KEYWORD", True),
    ]


def test_async_client_is_refused_with_a_clear_message() -> None:
    with pytest.raises(NotImplementedError, match=r"synchronous only.*deliberately not provided"):
        get_client(sync_client=False)


def test_version_is_a_string() -> None:
    assert isinstance(orchestration_client.__version__, str)
    assert SyncPrefectClient("http://127.0.0.1:1/api").client_version() == "3.9.1"


MODEL_HELPERS = {"model_dump", "model_dump_json", "model_copy", "model_validate",
                 "model_validate_json"}  # fmt: skip


ENUMS = {"SetStateStatus", "StateType"}


@pytest.mark.parametrize("name", sorted(set(PUBLIC["orchestration_client.schemas"]) - ENUMS))
def test_public_models_have_the_pydantic_helpers(name: str) -> None:
    import orchestration_client.schemas as schemas

    model = getattr(schemas, name)
    assert set(dir(model)) >= MODEL_HELPERS, name
    assert isinstance(inspect.getattr_static(model, "model_validate"), classmethod)
    tags = {"input_type": ["TaskRunResult", "FlowRunResult", "Parameter", "Constant"],
            "type": ["StateAcceptDetails", "StateRejectDetails", "StateWaitDetails",
                     "StateAbortDetails"]}  # fmt: skip
    for attribute, owners in tags.items():
        if name in owners:
            assert isinstance(inspect.getattr_static(model, attribute), property)
