"""Models: the ``msgspec.Struct`` classes with Prefect's names and fields, for what the
server sends (task runs, states, orchestration results), what the client sends (request
bodies, filters) and the enums both share. No I/O here.

* ``_model``: the shared base (``model_dump()``, ``model_validate()``, Prefect's equality);
* ``_schemas``, ``_states``, ``_enums``, ``_filters``: the public models, re-exported by
  ``schemas``, ``states``, ``sorting`` and ``filters``;
* ``_bodies``: request bodies, which carry only what the caller set;
* ``_codec``: encoding bodies and decoding replies, with errors that name the JSON path;
* ``_state_data``: what of a state's ``data`` is sent, as Prefect sends it.

May import: msgspec, the standard library, and from this package only the bottom modules
(``_exceptions``, ``_retry_after``, ``_version``).
"""
