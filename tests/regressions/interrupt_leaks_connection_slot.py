"""An exception raised by a signal handler (Ctrl-C's KeyboardInterrupt, a SIGTERM handler's
SystemExit, Celery's SoftTimeLimitExceeded, a SIGALRM timeout) that lands at an awkward
moment of a call lost one of the client's connection slots for good; after
ORCHESTRATION_CLIENT_MAX_CONNECTIONS such interrupts every call waited the connect timeout
and failed with APITimeoutError "all N connections ... stayed in use" although none was.

Found by an adversarial review of issue 20 (.repros/interrupt_leaks_connection_slot.py):
A. after urllib3 returned the reply and before Transport.send read it (requests'
   build_response): nobody released the connection;
B. inside Queue.get after the slot was popped: the queue took the exception for an
   interrupted wait, so the popped slot was lost.

Here, against a stub server on 127.0.0.1 (cap 4):
A. KeyboardInterrupt at requests' build_response;
S. a sweep: one call interrupted at each point where a signal handler could run (every
   Python function entry, where CPython runs pending signal handlers, and every line of the
   code that takes and gives back connections: urllib3's connectionpool.py and this
   package's HTTP layer), one point per call, and after each the slots are counted (B is
   one of these points);
C. a storm: calls interrupted by real SIGALRM signals at random moments while other threads
   keep the pool busy (so some interrupts land in the wait for a free connection).
After each part every slot must be free (and after A and S, CAP slow calls at once must all
succeed).
Exit status 1 while any interrupt loses a slot, 0 once none does. About 10 s.
"""

import faulthandler
import linecache
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support.regression_stub import Stub, reply

os.environ["PREFECT_CLIENT_CSRF_SUPPORT_ENABLED"] = "false"
CAP = 4
os.environ["ORCHESTRATION_CLIENT_MAX_CONNECTIONS"] = str(CAP)

import requests.adapters

from orchestration_client import SyncPrefectClient

SLOW = 0.8  # seconds /slow takes; longer than the pool wait (the connect timeout) below
#: Files whose every line is an interruption point in the sweep (others: function entries).
SLOT_CODE = ("urllib3/connectionpool.py", "orchestration_client/_http/")


def handler(conn, method, path, headers, body, state):
    if "/slow" in path:
        time.sleep(SLOW)
    conn.sendall(reply(200, b'"3.9.1"'))
    return True


def new_client(url):
    # connect timeout 0.4 s = the longest a caller waits for a free connection
    client = SyncPrefectClient(url, httpx_settings={"timeout": (0.4, 10.0)})
    client.api_version()
    return client


def free_slots(client):
    """The free slots of the pool the client's calls use (CAP when none is lost). An
    interrupt inside urllib3's pool lookup may drop the pool itself from the pool manager
    (the next call makes a new one, with every slot free): then there is none to count."""
    pools = list(client._transport._adapter.poolmanager.pools._container.values())
    for pool in pools:  # -1: an interrupt left the pool's lock held (every call would hang)
        if not pool.pool.mutex.acquire(timeout=2):
            return -1
        pool.pool.mutex.release()
    return min((pool.pool.qsize() for pool in pools), default=CAP)


def capacity(client):
    """How many of CAP simultaneous slow calls succeed (CAP when no slot was lost)."""
    done = []

    def one():
        try:
            client._transport.request("GET", "/slow")
            done.append(True)
        except Exception as exc:  # APITimeoutError: no free connection
            done.append(False)
            print(f"      a concurrent call failed: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=one) for _ in range(CAP)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sum(done)


def interrupt_at(predicate):
    """A trace function raising KeyboardInterrupt at the first Python call for which
    ``predicate(frame)`` holds (a point where CPython runs a pending signal handler)."""

    def tracer(frame, event, arg):
        if event == "call" and predicate(frame):
            sys.settrace(None)
            raise KeyboardInterrupt
        return None

    return tracer


def part_a(url):
    client = new_client(url)
    build_response = requests.adapters.HTTPAdapter.build_response.__code__
    sys.settrace(interrupt_at(lambda frame: frame.f_code is build_response))
    try:
        client.api_version()
    except KeyboardInterrupt:
        pass
    finally:
        sys.settrace(None)
    idle, ok = free_slots(client), capacity(client)
    print(f"A. interrupt after the reply arrived: free slots {idle} of {CAP}, "
          f"{ok} of {CAP} concurrent calls succeeded")
    return idle == CAP and ok == CAP


class Sweep:
    """Interrupts the ``target``-th interruption point of the traced call."""

    def __init__(self, target):
        self.target = target
        self.seen = 0
        self.where = None

    def _hit(self, frame):
        self.seen += 1
        if self.seen == self.target:
            sys.settrace(None)
            self.where = (frame.f_code.co_filename, frame.f_code.co_name, frame.f_lineno)
            raise KeyboardInterrupt
        return False

    def global_trace(self, frame, event, arg):
        self._hit(frame)
        if any(part in frame.f_code.co_filename for part in SLOT_CODE):
            return self.local_trace
        return None

    def local_trace(self, frame, event, arg):
        if event == "line" and not _with_line(frame):
            self._hit(frame)
        return self.local_trace


def _with_line(frame):
    """Whether the frame is at a with statement's line. That line's event fires before
    __enter__ (nothing is held yet: the line before is the same point) and again at the
    exit, just past the block's clean-up, where CPython 3.10+ runs no signal handler (it
    runs them at function entries, after calls and on backward jumps) but a trace function
    could still raise."""
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return line.startswith("with ")


def part_sweep(url):
    client = new_client(url)
    points = 0
    lost = []
    places = set()
    broken = []
    target = 1
    started = time.monotonic()
    while True:
        # Each traced call starts alike, with an idle connection to reuse, so that the
        # points keep their numbers (an interrupted call's connection may be closed).
        client.api_version()
        sweep = Sweep(target)
        sys.settrace(sweep.global_trace)
        try:
            client.api_version()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        if sweep.where is None:  # the call ended before this point: every point was tried
            break
        points += 1
        places.add(sweep.where[1])
        idle = free_slots(client)
        if idle != CAP:
            what = "the pool's lock left held" if idle < 0 else f"{CAP - idle} slot(s) lost"
            lost.append(f"{os.path.basename(sweep.where[0])}:{sweep.where[2]} "
                        f"({sweep.where[1]}): {what}")
            # Start again with every slot free; the broken client is kept, since collecting
            # a pool whose lock is held would hang in urllib3's finalizer.
            broken.append(client)
            client = new_client(url)
        target += 1
    took = time.monotonic() - started
    ok = capacity(client)
    print(f"S. one call interrupted at each of {points} points ({took:.1f} s): "
          f"{len(lost)} lost a slot or left a lock held; then {ok} of {CAP} concurrent calls succeeded")
    for line in lost[:15]:
        print("      " + line)
    # The sweep must have reached the places that used to lose a slot.
    missed = {"build_response", "_get_conn", "get", "urlopen", "_put_conn"} - places
    if missed:
        print(f"      the sweep missed {sorted(missed)}")
    return not lost and ok == CAP and not missed and points > 200


class Interrupted(BaseException):
    """What a signal handler's exception (SoftTimeLimitExceeded, a timeout) is to the call."""


def part_storm(url, seconds=3.0):
    # A longer wait for a free connection than the other parts: the busy threads and the
    # interrupted caller share CAP connections on two loaded cores.
    client = SyncPrefectClient(url, httpx_settings={"timeout": (5.0, 10.0)})
    client.api_version()
    stop = threading.Event()
    failures = []
    took = []

    def busy():  # keeps the pool near its cap, so some interrupts land in the wait
        while not stop.is_set():
            began = time.monotonic()
            try:
                client.api_version()
                took.append(time.monotonic() - began)
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.0005)  # lets the main thread (where signals are handled) run

    others = [threading.Thread(target=busy) for _ in range(CAP)]
    for thread in others:
        thread.start()
    armed = [False]

    def on_alarm(signum, frame):
        if armed[0]:
            armed[0] = False
            raise Interrupted()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    interrupted = calls = 0
    scale = 2.0  # adjusted so that about half the calls end before their signal
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            calls += 1
            try:
                typical = sum(took[-50:]) / len(took[-50:]) if took else 0.002
                armed[0] = True
                signal.setitimer(signal.ITIMER_REAL, random.uniform(0, scale * typical))
                client.api_version()
                armed[0] = False
                scale = max(scale * 0.9, 0.1)
            except Interrupted:
                interrupted += 1
                scale = min(scale * 1.1, 50.0)
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        stop.set()
        for thread in others:
            thread.join(30)
    idle = free_slots(client)
    print(f"C. {interrupted} of {calls} calls interrupted at random by SIGALRM beside "
          f"{len(others)} busy threads ({len(took)} calls): free slots {idle} of {CAP}; "
          f"{len(failures)} busy calls failed")
    for line in failures[:5]:
        print("      " + line)
    return idle == CAP and not failures


def main():
    # With the defect an interrupt may leave a pool's lock held, and every later call hang.
    faulthandler.dump_traceback_later(90, exit=True)
    stub = Stub(handler)
    try:
        results = [part_a(stub.url), part_sweep(stub.url), part_storm(stub.url)]
    finally:
        stub.stop()
    if all(results):
        print("OK: no interrupt lost a connection slot")
        return 0
    print("DEFECT: interrupts lost connection slots for good")
    return 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Without the finalizers: with the defect, a pool whose lock an interrupt left held
    # would hang urllib3's finalizer at exit.
    os._exit(code)
