"""What the tests stand on, kept apart from the tests themselves: real Prefect servers
(``prefect_server``, the production ``topology``, shared ``local_servers``), stub, hostile and
recording servers and proxies (``stub_server``, ``hostile_server``, ``fault_proxy``,
``recording_proxy``, ``regression_stub``), helpers for forks and captures, the cached
virtualenvs and old servers of the compat tests (``compat``), and the scripts each runtime
world runs (``worlds``). Imported as ``support.<module>`` (``tests/conftest.py`` puts ``tests/``
on the path); nothing here is collected as a test.
"""
