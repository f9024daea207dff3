"""Reading one reply, bounded: plugged into urllib3's pools below ``requests``.

Every reply on a connection this package opens is read whole, before urllib3 hands it up,
by :class:`BoundedReply` (an ``http.client.HTTPResponse``). Reading it there, inside
urllib3's ``urlopen``, is what gives these rules one home:

* **Interim replies** (``103 Early Hints`` and any other 1xx but ``101``) are skipped;
  ``http.client`` skips only ``100``, and would take a ``103`` for the reply and leave the
  real one in the socket for the next request. A ``101`` closes the connection.
* **A deadline for the whole reply**: the read timeout urllib3 sets on the socket bounds
  the time from sending the request to the reply's last byte, not only each gap between
  bytes, so a server dripping a byte at a time still fails the attempt in time. Passing
  it raises ``socket.timeout``, which urllib3 reports as a read timeout.
* **A size cap on the decoded body** (:data:`DEFAULT_MAX_REPLY_BYTES`, or
  ``ORCHESTRATION_CLIENT_MAX_REPLY_BYTES``): gzip and deflate are decoded here,
  incrementally and never past the cap, so neither a long chunked body nor a gzip bomb
  can hold more than about the cap in memory. The body handed up is the decoded one;
  ``Content-Encoding`` and ``Transfer-Encoding`` are replaced by its ``Content-Length``.
* **A reset or a short body in the middle of the reply** raises inside ``urlopen``, so
  urllib3's retry policy treats it exactly like a reset before the reply, and the
  connection is closed, never reused.

Connections in flight are capped per client (:data:`DEFAULT_MAX_CONNECTIONS`, or
``ORCHESTRATION_CLIENT_MAX_CONNECTIONS``), as Prefect's client caps them:

* urllib3's pool runs in blocking mode, so a caller beyond the cap waits for a connection
  to come back; requests never passes urllib3 a bound for that wait (it would wait
  forever), so the pool bounds it itself, by the connect timeout. Past it urllib3 raises
  ``EmptyPoolError``, which the transport reports as a timeout: "not sent" when no attempt
  of the call went out, else :class:`NoConnectionForRetry` (an earlier attempt may have
  reached the server).
* Every connection opened is kept for reuse, so urllib3 has nothing to discard and never
  logs "Connection pool is full, discarding connection".
* The slots are counted by holder (:class:`ConnectionSlots`), not passed around, so an
  exception raised anywhere in a call (Ctrl-C, ``SystemExit``, a Celery time limit, a
  SIGALRM handler's, ``gevent.Timeout``) neither loses a slot nor frees one it did not
  take: urllib3's clean-up gives back "this caller's slot", and so does the transport's
  after any exception, which covers a reply lost after urllib3 returned it and before it
  was read. The one window left needs a second exception within the few bytecodes of the
  clean-up of a first one that landed between taking a slot and urllib3's own clean-up,
  in a thread or greenlet that never calls the client again: its slot then stays taken.
* The wait before a retry is made holding no connection: urllib3 calls the retry policy's
  ``sleep()`` while it still holds the (broken) connection, so ``PrefectRetry`` leaves
  the wait to this pool's ``urlopen``, which makes it when the retry starts, after the
  connection was closed and its slot given back.
* Under gevent or eventlet the wait is a greenlet's: slots made after monkey-patching have
  green locks, and ones made before still wait cooperatively, since ``threading.Condition``
  allocates the lock it waits on at each wait (its own lock is only held for a moment,
  never across a switch).

A client may pass ``check_new_connection``: called before each new connection is opened
(with None) and once it is open (with its socket), before anything is sent on it; a reason
returned refuses the connection (``ConnectionVetoed``, never retried, its cause a
``NewConnectionError``: nothing was sent). The local server uses it to make sure every
connection reaches the server the client verified. The pool connects in ``_validate_conn``,
which urllib3 calls just before sending; under a tool that stands in for sockets (vcrpy)
there may be no socket to check, and only the first call is made.

The pools are the stock urllib3 classes with small overrides (``_new_conn`` sets the
connection's ``response_class``; the wait bound, the slots and the retry wait above), so
tools that patch
urllib3's connection classes, and everything that patches ``requests.Session.send``, keep
working.
"""

import functools
import http.client
import io
import logging
import os
import queue
import socket
import threading
import time
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import requests.adapters
from urllib3.exceptions import (
    ConnectTimeoutError,
    EmptyPoolError,
    NewConnectionError,
    PoolError,
    ProxyError,
)
from urllib3.util.retry import Retry

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_REPLY_BYTES",
    "MAX_CONNECTIONS_VARIABLE",
    "MAX_INTERIM_REPLIES",
    "MAX_REPLY_BYTES_VARIABLE",
    "BoundedAdapter",
    "BoundedReply",
    "ConnectionCheck",
    "ConnectionSlots",
    "ConnectionVetoed",
    "NoConnectionForRetry",
    "ReplyRejected",
    "max_connections",
    "max_reply_bytes",
    "may_have_reached_server",
]

logger = logging.getLogger("orchestration_client")

#: Largest decoded reply body accepted. A page of 200 task runs is about 0.3 MB, a run
#: with large ``task_inputs`` a few MB at most: 64 MiB leaves room for 200 times the
#: largest normal page, while one runaway reply can't take more than that from a worker.
DEFAULT_MAX_REPLY_BYTES = 64 * 1024 * 1024
MAX_REPLY_BYTES_VARIABLE = "ORCHESTRATION_CLIENT_MAX_REPLY_BYTES"
#: Connections one client may have open at once; Prefect's client allows 16.
DEFAULT_MAX_CONNECTIONS = 16
MAX_CONNECTIONS_VARIABLE = "ORCHESTRATION_CLIENT_MAX_CONNECTIONS"
#: Interim (1xx) replies skipped before one reply; more fails the attempt.
MAX_INTERIM_REPLIES = 32
_CHUNK = 256 * 1024
_PIECE = 1024 * 1024


def max_reply_bytes(env: Mapping[str, str]) -> int:
    """The reply size cap from ``ORCHESTRATION_CLIENT_MAX_REPLY_BYTES`` (a whole number of
    bytes, at least 1), or the default; anything else is a ``ValueError`` naming it."""
    return _whole_number(env, MAX_REPLY_BYTES_VARIABLE, DEFAULT_MAX_REPLY_BYTES, "bytes")


def max_connections(env: Mapping[str, str]) -> int:
    """The cap on connections in flight from ``ORCHESTRATION_CLIENT_MAX_CONNECTIONS`` (a
    whole number, at least 1), or the default; anything else is a ``ValueError`` naming it."""
    return _whole_number(env, MAX_CONNECTIONS_VARIABLE, DEFAULT_MAX_CONNECTIONS, "connections")


def _whole_number(env: Mapping[str, str], name: str, default: int, unit: str) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of {unit} >= 1, got {raw!r}")
    return value


class ReplyRejected(Exception):
    """A reply refused while it was read (too large, or an encoding that can't be decoded).

    Deliberately not an ``OSError`` or ``HTTPException``: urllib3 must not retry it, only
    close the connection and let it through; the transport turns it into a public error.
    """

    def __init__(
        self, message: str, *, status: int, reason: str, headers: Dict[str, str], limit: int = 0
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.limit = limit


#: ``check(None)`` before a new connection is opened, ``check(sock)`` once it is: None to go
#: ahead, or the reason to refuse it.
ConnectionCheck = Callable[[Optional[socket.socket]], Optional[str]]


class ConnectionVetoed(Exception):
    """A new connection refused by the client's ``check_new_connection`` before anything was
    sent on it. Not an ``OSError``: urllib3 must not retry it; the transport reports it."""


def _connect_checked(conn: Any, check: ConnectionCheck) -> None:
    """Open ``conn`` if ``check`` allows it, then ask ``check`` again with its socket."""

    def refuse(reason: str) -> ConnectionVetoed:
        vetoed = ConnectionVetoed(reason)
        vetoed.__cause__ = NewConnectionError(conn, reason)  # nothing was sent
        return vetoed

    reason = check(None)
    if reason is not None:
        raise refuse(reason)
    conn.connect()
    sock = conn.sock
    # A tool that stands in for the network (vcrpy) may hand back no real socket, or
    # connect only later: then the first check is all there is.
    reason = check(sock) if isinstance(sock, socket.socket) else None
    if reason is not None:
        conn.close()
        raise refuse(reason)


class _DeadlineReader(io.RawIOBase):
    """A socket reader that fails once ``timeout`` seconds have passed since it was made:
    each ``recv`` waits at most the time left, so the whole reply shares one deadline."""

    def __init__(self, sock: socket.socket, timeout: Optional[float]) -> None:
        super().__init__()
        self._sock = sock
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout(f"the reply was not complete within {self._timeout} s")
            self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Decoder:
    """Decodes a body's ``Content-Encoding`` chunk by chunk, never producing more than
    ``limit`` bytes in total (zlib's ``max_length``); ``TooLarge`` past it."""

    class TooLarge(Exception):
        pass

    def __init__(self, encodings: List[str], limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._stages: List[Any] = [_decompressor(name) for name in reversed(encodings)]

    def feed(self, data: bytes) -> bytes:
        for index, stage in enumerate(self._stages):
            data = self._inflate(index, stage, data)
        self.total += len(data)
        if self.total > self.limit:
            raise self.TooLarge()
        return data

    def _inflate(self, index: int, stage: Any, data: bytes) -> bytes:
        out: List[bytes] = []
        room = self.limit - self.total
        while True:
            # Small pieces: zlib grows its output buffer by copying, so one piece the size
            # of the whole limit would briefly need twice the limit.
            cap = min(room + 1, _PIECE)
            piece = stage.decompress(data, cap)
            out.append(piece)
            room -= len(piece)
            if room < 0:
                raise self.TooLarge()
            data = stage.unconsumed_tail
            if stage.eof and stage.unused_data:  # another gzip member follows, or padding
                if not stage.unused_data.startswith(b"\x1f\x8b"):
                    # Bytes after the last member are not a member: ignored, as urllib3
                    # and httpx ignore them.
                    return b"".join(out)
                data = stage.unused_data
                stage = self._stages[index] = _decompressor("gzip")
            elif not data and len(piece) < cap:  # input used up, nothing left pending
                return b"".join(out)


def _decompressor(name: str) -> Any:
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return _Deflate()
    raise ValueError(f"the reply uses Content-Encoding {name!r}, which this client cannot decode")


class _Deflate:
    """``deflate`` as zlib-wrapped data, or raw deflate from servers that send that."""

    def __init__(self) -> None:
        self._inner: Any = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._first:
            self._first = False
            try:
                return bytes(self._inner.decompress(data, max_length))
            except zlib.error:
                self._inner = zlib.decompressobj(-zlib.MAX_WBITS)
        return bytes(self._inner.decompress(data, max_length))

    @property
    def unconsumed_tail(self) -> bytes:
        return bytes(self._inner.unconsumed_tail)

    @property
    def eof(self) -> bool:
        return False  # a deflate stream has one member; trailing bytes are ignored

    @property
    def unused_data(self) -> bytes:
        return b""


class BoundedReply(http.client.HTTPResponse):
    """An ``http.client`` reply that skips interim replies and reads its body whole, within
    the attempt's deadline and under ``max_bytes`` decoded (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        debuglevel: int = 0,
        method: Optional[str] = None,
        url: Optional[str] = None,
        *,
        max_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp.close()  # the plain reader made by http.client; ours shares one deadline
        self.fp = io.BufferedReader(_DeadlineReader(sock, sock.gettimeout()))
        self.max_bytes = max_bytes
        self._interim = 0

    def _read_status(self) -> Any:
        version, status, reason = super()._read_status()  # type: ignore[misc]
        if 100 <= status < 200 and status != 101:
            self._interim += 1
            if self._interim > MAX_INTERIM_REPLIES:
                raise ReplyRejected(
                    f"it sent more than {MAX_INTERIM_REPLIES} interim (1xx) replies and no reply",
                    status=status,
                    reason=reason.strip(),
                    headers={},
                )
            status = http.client.CONTINUE  # begin() then skips its headers, as for a 100
        return version, status, reason

    def begin(self) -> None:
        super().begin()
        if self.status == 101:  # the connection now speaks something else
            self.will_close = True
            return
        if self.length == 0 or self.fp is None:
            return
        self._read_whole_body()

    def _read_whole_body(self) -> None:
        headers = self.msg
        encodings = [
            part.strip().lower()
            for value in headers.get_all("Content-Encoding") or []
            for part in value.split(",")
            if part.strip() and part.strip().lower() != "identity"
        ]
        try:
            decoder = _Decoder(encodings, self.max_bytes)
        except ValueError as exc:
            if 200 <= self.status < 300:
                raise self._rejected(str(exc)) from None
            # An error page in an encoding this client can't read: its status still counts
            # (a 503 is retried), and its body is kept as it came.
            decoder = _Decoder([], self.max_bytes)
        parts: List[bytes] = []
        try:
            while True:
                chunk = super().read(_CHUNK)
                if not chunk:
                    break
                parts.append(decoder.feed(chunk))
        except _Decoder.TooLarge:
            parts.clear()
            raise self._rejected(
                f"the reply body is larger than the limit of {self.max_bytes} bytes "
                f"(set {MAX_REPLY_BYTES_VARIABLE} to change it)",
                limit=self.max_bytes,
            ) from None
        except zlib.error as exc:
            raise self._rejected(
                f"the reply body is not valid {'+'.join(encodings)} data: {exc}"
            ) from None
        if self.length:  # the connection ended before Content-Length bytes came
            raise http.client.IncompleteRead(b"", self.length)
        body = b"".join(parts)
        del parts
        for name in ("Content-Encoding", "Transfer-Encoding", "Content-Length"):
            del headers[name]
        headers["Content-Length"] = str(len(body))
        self.fp = io.BytesIO(body)  # type: ignore[assignment]
        self.length = len(body)
        self.chunked = False

    def _rejected(self, message: str, limit: int = 0) -> ReplyRejected:
        self.will_close = True
        return ReplyRejected(
            message,
            status=self.status,
            reason=self.reason,
            headers=dict(self.msg.items()),
            limit=limit,
        )


class ConnectionSlots:
    """What urllib3 keeps a pool's connections in (``pool.pool``, in place of its queue):
    the idle connections, and the slots counted by who holds them.

    urllib3's queue passes slots around as items (a connection or ``None``): an exception
    between taking one and handing it back loses it, and one raised while waiting makes
    urllib3 hand back a slot that was never taken. Here a slot is a key in a dict, the
    holder's thread or greenlet id (``threading.get_ident``, looked up at each call: green
    once patched). Taking it is one dict store, under the lock and after the wait; giving it
    back drops the key, and dropping a key that is not there does nothing. So every clean-up
    may give back "whatever this caller holds", as often as it runs, and an interrupt at any
    point leaves the count either before or after the store, never in between:

    * ``get`` takes a slot (waiting at most ``timeout``; ``queue.Empty`` past it) and hands
      out an idle connection, or ``None`` for urllib3 to make one. A caller that already
      holds a slot (left by an interrupted call of the same thread, or a call made by a
      signal handler inside a call) goes on with it, without waiting and without a second.
    * ``put`` keeps the connection (if any) and gives back the caller's slot;
      ``release`` only gives back the slot (the transport's clean-up after any exception).
    * ``get(block=False)`` is urllib3 closing the pool: idle connections, then
      ``queue.Empty``; no slot is taken.

    The lock is a C-level ``RLock`` held only by ``with`` and ``Condition.wait`` (which
    uses the ``RLock``'s C helpers), so an interrupt does not leave it held where CPython
    guarantees a ``with`` block's ``__exit__`` (3.10+); a Python-level ``__exit__``, as in
    the stdlib queue's ``Condition``, can be interrupted before it releases. A call made by
    a signal handler on the same thread re-enters instead of deadlocking. A caller that
    leaves the wait without a slot passes its wake-up on to the next waiter.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._holders: Dict[int, None] = {}
        self._idle: List[Any] = []
        self.renew_locks()

    def renew_locks(self) -> None:
        """New locks: at creation, and in a forked child (a parent thread may hold one)."""
        self.mutex = threading.RLock()  # looked up now: green after patching
        self._freed = threading.Condition(self.mutex)

    def qsize(self) -> int:
        """What this caller's ``get`` can still hand out, as a queue's size says: the free
        slots, or, for a caller that holds one (its ``get`` takes no second), the idle
        connections. Code that empties ``pool.pool`` item by item (vcrpy does) then ends."""
        if threading.get_ident() in self._holders:
            return len(self._idle)
        return max(self.maxsize - len(self._holders), 0)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        # No try/except inside the with blocks: CPython 3.11 can place a "try:" line's
        # NOP outside the with's clean-up, where a trace function's exception skips it.
        if not block:
            with self.mutex:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                raise queue.Empty
            return conn
        holder = threading.get_ident()
        with self.mutex:
            if holder not in self._holders:
                if len(self._holders) >= self.maxsize:
                    self._wait(timeout)
                self._holders[holder] = None  # the slot is taken: this one store
            return self._idle.pop() if self._idle else None

    def _wait(self, timeout: Optional[float]) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while len(self._holders) >= self.maxsize:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise queue.Empty
                self._freed.wait(left)
        except BaseException:
            if len(self._holders) < self.maxsize:
                self._freed.notify()  # a wake-up this caller took goes to the next one
            raise

    def put(self, item: Any, block: bool = True, timeout: Optional[float] = None) -> None:
        surplus = None
        with self.mutex:
            if item is not None:
                if len(self._idle) < self.maxsize:
                    self._idle.append(item)
                else:  # only after a signal handler's call beside an interrupted one
                    surplus = item
            self._give_back()
        if surplus is not None:
            logger.debug("more idle connections than %d; closing one", self.maxsize)
            surplus.close()

    def release(self) -> None:
        """Give back the calling thread's or greenlet's slot, if it holds one."""
        if threading.get_ident() in self._holders:
            with self.mutex:
                self._give_back()

    def _give_back(self) -> None:
        holder = threading.get_ident()
        if holder in self._holders:
            # Wake a waiter first: interrupted here, the slot is still held, and the
            # caller's clean-up gives it back (a free slot nobody is woken for would make
            # waiters wait their whole timeout).
            self._freed.notify()
            self._holders.pop(holder, None)


class NoConnectionForRetry(PoolError):
    """No free connection came in time for a retry, after an attempt of the same call that
    may have reached the server (``history``: urllib3's record of the attempts). Not an
    ``EmptyPoolError``, which means the request was never sent."""

    def __init__(self, pool: Any, history: Tuple[Any, ...]) -> None:
        super().__init__(pool, "no free connection for a retry")
        self.history = history

    def __reduce__(self) -> Any:
        return type(self), (None, self.history)


def may_have_reached_server(attempt: Any) -> bool:
    """Whether one attempt in a ``Retry.history`` may have reached the server: it got a
    reply, or failed after connecting (a reset, a cut-short reply). Only a failure to
    connect (refused, unreachable, a connect timeout, also through a proxy) surely did not."""
    if attempt.status is not None:
        return True
    error = attempt.error
    if isinstance(error, ProxyError):
        error = getattr(error, "original_error", error)
    return not isinstance(error, ConnectTimeoutError)  # NewConnectionError is one too


@functools.cache
def _bounded_pool(pool_class: Any, max_bytes: int, wait: Optional[float]) -> Any:
    """``pool_class`` whose new connections read replies with :class:`BoundedReply`, whose
    callers wait at most ``wait`` seconds (None: no limit) for a free connection, which
    keeps every connection handed back, counts its slots by holder
    (:class:`ConnectionSlots`), and waits between retries holding no connection (see the
    module docstring)."""
    reply = functools.partial(BoundedReply, max_bytes=max_bytes)

    def _new_conn(self: Any) -> Any:
        conn = pool_class._new_conn(self)
        conn.response_class = reply
        return conn

    def _validate_conn(self: Any, conn: Any) -> None:
        # urllib3 calls this just before it sends a request on ``conn``; a connection
        # without a socket (new, or closed since) would connect inside ``request``. Here
        # it connects first, under the check. No attribute of ``conn`` is replaced: tools
        # that wrap connections (vcrpy copies attributes to the connection it wraps)
        # would call the replacement from itself.
        check = self.check_new_connection
        if check is not None and getattr(conn, "sock", None) is None:
            _connect_checked(conn, check)
        pool_class._validate_conn(self, conn)

    def _get_conn(self: Any, timeout: Optional[float] = None) -> Any:
        return pool_class._get_conn(self, wait if timeout is None else timeout)

    def _put_conn(self: Any, conn: Any) -> None:
        # urllib3's own logs a WARNING (1.26) or raises FullPoolError (2.x) when its queue
        # is full; the slots never are (a surplus idle connection is closed).
        slots = self.pool
        if slots is not None:
            slots.put(conn)
        elif conn:
            conn.close()

    def urlopen(
        self: Any,
        method: str,
        url: str,
        body: Any = None,
        headers: Any = None,
        retries: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # urllib3 calls its retry policy's sleep() before giving back the connection (a
        # broken one is closed and handed back only afterwards) and then calls urlopen
        # again for the retry; PrefectRetry leaves that wait for here, where this caller
        # holds no connection and no slot.
        sleep_deferred = getattr(retries, "sleep_deferred", None)
        if sleep_deferred is not None:
            sleep_deferred()
        try:
            return pool_class.urlopen(self, method, url, body, headers, retries, *args, **kwargs)
        except EmptyPoolError:
            history = getattr(retries, "history", ())
            if any(may_have_reached_server(attempt) for attempt in history):
                raise NoConnectionForRetry(self, history) from None
            raise

    return type(
        pool_class.__name__,
        (pool_class,),
        {
            "_new_conn": _new_conn,
            "_get_conn": _get_conn,
            "_put_conn": _put_conn,
            "_validate_conn": _validate_conn,
            "urlopen": urlopen,
            "QueueCls": ConnectionSlots,
            "check_new_connection": None,
            #: Read by PrefectRetry.increment: leave the wait before a retry to urlopen.
            "defers_retry_waits": True,
        },
    )


def _bound(
    manager: Any, max_bytes: int, wait: Optional[float], check: Optional[ConnectionCheck]
) -> None:
    classes = {
        scheme: _bounded_pool(pool_class, max_bytes, wait)
        for scheme, pool_class in manager.pool_classes_by_scheme.items()
    }
    if check is not None:  # this adapter's own classes (the cached ones are shared)
        hook = staticmethod(check)
        classes = {
            scheme: type(cls.__name__, (cls,), {"check_new_connection": hook})
            for scheme, cls in classes.items()
        }
    manager.pool_classes_by_scheme = classes


class BoundedAdapter(requests.adapters.HTTPAdapter):
    """``HTTPAdapter`` whose pools read replies with :class:`BoundedReply` and cap the
    connections in flight at ``pool_maxsize`` (a caller waits at most ``pool_wait`` seconds
    for one, None: no limit), with a retry policy chosen per call (see
    :meth:`use_retries`) and pools a forked child can drop."""

    def __init__(
        self,
        *,
        max_reply_bytes: int,
        pool_maxsize: int,
        pool_wait: Optional[float],
        max_retries: Retry,
        check_new_connection: Optional[ConnectionCheck] = None,
    ) -> None:
        self.max_reply_bytes = max_reply_bytes
        self.check_new_connection = check_new_connection
        self.max_connections = pool_maxsize
        self.pool_wait = pool_wait
        self._per_thread = threading.local()
        self._default_retries = max_retries
        super().__init__(
            pool_connections=4, pool_maxsize=pool_maxsize, pool_block=True, max_retries=max_retries
        )

    @property
    def max_retries(self) -> Retry:
        """The policy the current thread asked for with :meth:`use_retries`."""
        retries: Optional[Retry] = getattr(self._per_thread, "retries", None)
        return retries or self._default_retries

    @max_retries.setter
    def max_retries(self, value: Retry) -> None:
        self._default_retries = value

    def use_retries(self, retries: Retry) -> None:
        """Retry policy for this thread's next sends (requests reads ``max_retries``)."""
        self._per_thread.retries = retries

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _bound(self.poolmanager, self.max_reply_bytes, self.pool_wait, self.check_new_connection)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        new = proxy not in self.proxy_manager
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if new:
            _bound(manager, self.max_reply_bytes, self.pool_wait, self.check_new_connection)
        return manager

    def give_back_slots(self) -> None:
        """Give back the connection slot the calling thread or greenlet may still hold in
        any of these pools: after a call that ended by an exception between taking a slot
        and urllib3's clean-up (a reply lost before it was read), it would stay taken. A
        caller holding none changes nothing."""
        for manager in (self.poolmanager, *list(self.proxy_manager.values())):
            pools = getattr(manager, "pools", None)
            if pools is None:
                continue
            with pools.lock:
                held = list(pools._container.values())
            for pool in held:
                slots = getattr(pool, "pool", None)
                if isinstance(slots, ConnectionSlots):
                    slots.release()

    def forget_connections(self) -> None:
        """Drop every pool without using it: after a fork the pools, their sockets and their
        locks belong to the parent (a parent thread may even hold a lock)."""
        for manager in (self.poolmanager, *self.proxy_manager.values()):
            _unlock_inherited(manager)
        self.proxy_manager = {}
        self._per_thread = threading.local()
        state: Any = self  # requests keeps the pool sizes in untyped attributes
        self.init_poolmanager(state._pool_connections, state._pool_maxsize, state._pool_block)


def _unlock_inherited(manager: Any) -> None:
    """Give the pools inherited by a forked child fresh slot locks. When a dropped pool is
    collected, urllib3 takes its slots' lock to close its connections (in the child that
    closes only the child's copies of the sockets); a lock some parent thread held at the
    fork would never be released, and the child would hang there."""
    pools = getattr(getattr(manager, "pools", None), "_container", {})
    for pool in list(pools.values()):
        slots: Any = getattr(pool, "pool", None)
        if isinstance(slots, ConnectionSlots):
            slots.renew_locks()


def call_in_child_after_fork(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every child made by ``os.fork`` (and so by multiprocessing)."""
    register: Optional[Callable[..., None]] = getattr(os, "register_at_fork", None)
    if register is not None:
        register(after_in_child=callback)
