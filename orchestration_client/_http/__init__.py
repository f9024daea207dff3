"""HTTP plumbing: one ``requests.Session`` per client, set up once, that sends bytes to one
Prefect API and hands back a checked reply. It knows nothing about task runs.

* ``_transport``: the session (base URL, headers, auth, TLS, proxies, pool), ``send()`` and
  ``request()``, and the translation of failures into this package's errors;
* ``_connection``: each reply read whole and bounded inside urllib3 (deadline, size cap,
  interim replies, resets), and the cap on connections in flight;
* ``_retry``: Prefect's retry rules as a ``urllib3.util.Retry`` subclass;
* ``_observed_retry``: such a policy that reports each retry it grants (one budget spent
  over several requests; a token fetch seen to be retried, not hanging);
* ``_csrf``: the CSRF token, fetched once for all threads;
* ``_redirects``, ``_urls``, ``_no_proxy``, ``_reply_errors``: same-origin redirects, the API
  URL split from its password, ``NO_PROXY`` as httpx and requests read it, errors for
  replies refused while read.

May import: requests, urllib3, the standard library, and from this package the settings
(``_settings``), the codec of the models (``_models._codec``, for the token reply) and the
bottom modules (``_exceptions``, ``_retry_after``, ``_version``). Never the calls, the client
or the local server.
"""
