"""What of a state's ``data`` goes to the server: as in Prefect 3.9.1, almost nothing.

Prefect's client keeps a state's data on the state object and sends ``data: null``, except
for one case: a Prefect ``ResultRecord`` that has been written to result storage (or that
Prefect's run context says will be), whose *metadata* (storage key, serializer, ...) is sent
so that other processes can find the result. A dict that merely looks like that metadata is
dropped like any other value. Sending anything else lets the server store values its own
rules cannot read (a later transition of the run then fails with a 500 or is rejected), and
non-finite floats would be stored as ``null`` without a word.

This package has no result storage of its own, so only a record built by Prefect's result
store can be sent; Prefect is then importable, and its own rule decides.
"""

import importlib
from typing import Any, Dict, Optional

__all__ = ["sent_data"]


def _is_prefect_result_record(data: Any) -> bool:
    kind = type(data)
    return kind.__name__ == "ResultRecord" and kind.__module__.startswith("prefect.")


def sent_data(data: Any) -> Optional[Dict[str, Any]]:
    """The ``data`` to put in a proposed state: a persisted Prefect result's metadata as
    JSON types, else ``None``."""
    if not _is_prefect_result_record(data):
        return None
    results = importlib.import_module("prefect.results")  # present: the record is Prefect's
    if not (data.is_persisted or results.should_persist_result()):
        return None
    metadata: Dict[str, Any] = data.metadata.model_dump(mode="json")
    return metadata
