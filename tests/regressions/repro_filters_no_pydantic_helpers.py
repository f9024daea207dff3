"""Filters are public models (issue 11 item 3: model_dump/model_validate/... "on the public
models"), but ours have none of the helpers. Prefect code that loads a report filter from
config or logs the filter it used breaks with AttributeError:
    TaskRunFilter.model_validate(config["filter"]); f.model_dump(mode="json"); f.model_dump_json();
    f.model_copy(update=...)
Expected (Prefect): all work. Actual (ours): AttributeError for each.
"""
import sys, warnings
warnings.simplefilter("ignore")
import prefect.client.schemas.filters as PF
import orchestration_client.filters as OF

config = {"tags": {"all_": ["nightly"]}, "state": {"type": {"any_": ["FAILED"]}}}
fails = 0
for label, call in [
    ("TaskRunFilter.model_validate(dict)", lambda F: F.TaskRunFilter.model_validate(config)),
    ("filter.model_dump(mode='json', exclude_none=True)", lambda F: F.TaskRunFilter(**config).model_dump(mode="json", exclude_none=True)),
    ("filter.model_dump_json()", lambda F: F.TaskRunFilter(**config).model_dump_json()),
    ("filter.model_copy(update=...)", lambda F: F.TaskRunFilter(**config).model_copy(update={"operator": F.Operator.or_})),
    ("TaskRunFilterTags.model_validate_json(...)", lambda F: F.TaskRunFilterTags.model_validate_json('{"all_": ["a"]}')),
]:
    call(PF)  # works with Prefect
    try:
        call(OF)
        print("ok  ", label)
    except Exception as exc:
        fails += 1
        print("FAIL", label, f"-> {type(exc).__name__}: {exc}")
sys.exit(1 if fails else 0)
