"""Request features that older Prefect servers lack, and the clear error for using one.

A server refuses a field it does not know (``extra_forbidden``) or a value it does not know
(an enum or tagged-union error) with a 422. When such a 422 points at one of the features
below, the client raises ``FeatureNotSupported``, naming the feature, the first Prefect
release that has it, and the server's version when known. Nothing is checked before
sending: a new server accepts the request, and no extra request is made on the way.

The "since" versions were measured by reading each release's server schemas (the last
patch of every 3.x minor); they name the minor release.
"""

from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import requests

from .._exceptions import PrefectHTTPStatusError
from ._versions import version_key

__all__ = ["FEATURES", "Feature", "FeatureNotSupported", "unsupported_features"]

Loc = Tuple[Any, ...]


class Feature(NamedTuple):
    name: str
    since: str
    refused: Callable[[Loc, Dict[str, Any]], bool]


def _extra(*path: str) -> Callable[[Loc, Dict[str, Any]], bool]:
    def refused(loc: Loc, error: Dict[str, Any]) -> bool:
        return error.get("type") == "extra_forbidden" and loc == path

    return refused


def _duration_sort(loc: Loc, error: Dict[str, Any]) -> bool:
    return loc == ("sort",) and str(error.get("input", "")).startswith("DURATION_")


def _flow_run_input(loc: Loc, error: Dict[str, Any]) -> bool:
    # A tagged union the server cannot match: one error per known member, each at
    # task_inputs.<name>.<index>.<Member>.input_type, with the input it could not place.
    return (
        len(loc) >= 2
        and loc[0] == "task_inputs"
        and loc[-1] == "input_type"
        and error.get("input") == "flow_run"
    )


FEATURES: Sequence[Feature] = (
    Feature("the DURATION_ASC/DURATION_DESC task-run sorts", "3.9", _duration_sort),
    Feature("a FlowRunResult task input", "3.4", _flow_run_input),
    Feature("FlowRunFilterTags.any_", "3.1", _extra("flow_runs", "tags", "any_")),
    Feature("DeploymentFilterTags.any_", "3.1", _extra("deployments", "tags", "any_")),
    Feature("DeploymentFilterId.not_any_", "3.4", _extra("deployments", "id", "not_any_")),
    Feature("the FlowRunFilter.created_by filter", "3.6", _extra("flow_runs", "created_by")),
    Feature("the TaskRunFilter.end_time filter", "3.6", _extra("task_runs", "end_time")),
)
# Task-run labels (3.1) are not here: no member takes labels, and empty ones are omitted,
# so no request of ours can carry them.


def _errors(detail: Any) -> List[Dict[str, Any]]:
    """The validation errors of a 422 body: Prefect's ``exception_detail`` or FastAPI's
    ``detail``."""
    if not isinstance(detail, dict):
        return []
    errors = detail.get("exception_detail", detail.get("detail"))
    return [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def unsupported_features(detail: Any, server_version: Optional[str]) -> List[Feature]:
    """The features a 422 body says the server refused, in ``FEATURES`` order. A feature
    the server's known version already has is not blamed."""
    found: List[Feature] = []
    for error in _errors(detail):
        loc = tuple(error.get("loc") or ())
        loc = loc[1:] if loc[:1] == ("body",) else loc
        for feature in FEATURES:
            if feature in found or not feature.refused(loc, error):
                continue
            if server_version is not None and _at_least(server_version, feature.since):
                continue
            found.append(feature)
    return sorted(found, key=FEATURES.index)


def _at_least(version: str, since: str) -> bool:
    try:
        return version_key(version) >= version_key(since)
    except ValueError:
        return False


class FeatureNotSupported(PrefectHTTPStatusError):
    """422: the request used a feature this Prefect server is too old for.

    ``features`` lists ``(name, first Prefect version that has it)``; ``feature`` and
    ``minimum_version`` are the first of them and the version that has them all;
    ``server_version`` is the server's Prefect version, or ``None`` if unknown.
    """

    def __init__(
        self,
        response: requests.Response,
        *,
        features: Sequence[Tuple[str, str]],
        server_version: Optional[str],
        retries: int = 0,
    ) -> None:
        self.features = list(features)
        self.feature = self.features[0][0]
        self.minimum_version = max((since for _, since in self.features), key=version_key)
        self.server_version = server_version
        super().__init__(response, retries=retries)

    def _message(self, reason: Optional[str]) -> str:
        needs = "; ".join(f"{name} needs Prefect {since} or later" for name, since in self.features)
        runs = (
            f"this server runs Prefect {self.server_version}"
            if self.server_version
            else "this server's version is unknown"
        )
        return (
            f"The server is too old for this request: {needs}; {runs}. Upgrade the server to "
            f"{self.minimum_version} or later, or leave the feature out. "
            f"({super()._message(reason)})"
        )
