"""Call semantics: what each documented member does between its arguments and the wire.

* ``_arguments``: argument checks; bad input stops here, before any request;
* ``_exactly_once``: ``set_task_run_state`` applied at most once, a lost reply settled from
  the run's history;
* ``_features``: features an older server lacks, and the clear error for using one;
* ``_versions``: comparing Prefect versions.

May import: the HTTP layer (``_http``), the models (``_models``), the settings and the bottom
modules (``_exceptions``, ``_retry_after``, ``_version``). Never the client or the local
server.
"""
