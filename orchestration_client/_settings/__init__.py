"""Settings: what the client is configured with, read once per client into a frozen
``Settings`` value, from the places Prefect 3.9 reads them and in its order (arguments, the
environment, ``.env``, ``prefect.toml``, ``pyproject.toml``, the active profile).

* ``_load``: ``Settings`` and ``load_settings()``, every value checked and traced to where it
  came from;
* ``_files``: finding and parsing those files as Prefect does;
* ``_httpx``: Prefect's ``httpx_settings`` options translated for requests;
* ``_headers``: which header names and values can be sent, and how they are encoded (a
  setting is refused when it is read, not when a request fails).

May import: msgspec, the standard library (``tomllib``, or ``tomli`` below 3.11), and from
this package only the bottom modules (``_exceptions``, ``_retry_after``, ``_version``).
"""
