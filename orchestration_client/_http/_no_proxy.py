"""The proxies the API's calls use, from the environment, with ``NO_PROXY`` read as both
Prefect's client (httpx) and requests read it.

``HTTP_PROXY``, ``HTTPS_PROXY`` and ``ALL_PROXY`` (lower-case names win) are read by the
standard library's ``getproxies``, as both clients read them. ``NO_PROXY`` is a comma-separated
list; the API goes direct when any entry matches it under either client's rules, so a
setting that kept Prefect's client, or any requests-based tool, off the proxy keeps this
one off too:

* httpx's rules (this module): ``*`` (everything); ``scheme://host[:port]``; an IPv4 or IPv6
  address (anything after a ``/`` is ignored, so a CIDR entry is its first address only);
  ``localhost``; ``example.com`` (that domain and its subdomains, not ``myexample.com``);
  ``.example.com`` (subdomains only); any of these with ``:port`` (that port only, so
  ``127.0.0.1:4200`` sends the API on port 4200 of that address direct).
* requests' rules (``requests.utils.should_bypass_proxies``): for an IPv4 API host, an
  IPv4 network in CIDR form (``10.0.0.0/8``) or the address itself, without a port; for a
  named host, an entry equal to the host name (or ``host:port``) or a domain it is in, with
  ``.example.com`` matching the domain itself too (requests before 2.34 match any string
  suffix: ``example.com`` also matches ``myexample.com``); the platform's bypass list on
  macOS and Windows.

The API URL is fixed per client and redirects never leave its origin, so this is decided
once, when the client is built.
"""

import ipaddress
import urllib.request
from typing import Dict, NamedTuple, Optional
from urllib.parse import urlsplit

import requests.utils

__all__ = ["bypassed_like_httpx", "environment_proxies"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def environment_proxies(url: str) -> Dict[str, str]:
    """requests' ``proxies`` mapping for calls to ``url``: empty when ``NO_PROXY`` sends
    ``url`` direct under httpx's rules or requests' rules, else the environment's proxies."""
    no_proxy = urllib.request.getproxies().get("no", "")
    if bypassed_like_httpx(url, no_proxy):
        return {}
    return requests.utils.get_environ_proxies(url)


class _Pattern(NamedTuple):
    scheme: str  # "" for any
    host: str  # "" for any; "*.d" subdomains of d; "*d" d and its subdomains; else exact
    port: Optional[int]  # None for any

    def matches(self, scheme: str, host: str, port: Optional[int]) -> bool:
        if self.scheme and self.scheme != scheme:
            return False
        if self.port is not None and self.port != port:
            return False
        if self.host in ("", "*"):
            return True
        if self.host.startswith("*."):
            domain = self.host[1:]
            return host.endswith(domain) and len(host) > len(domain)
        if self.host.startswith("*"):
            domain = self.host[1:]
            return host == domain or host.endswith("." + domain)
        return host == self.host


def bypassed_like_httpx(url: str, no_proxy: str) -> bool:
    """Whether httpx would send ``url`` direct for this ``NO_PROXY`` value."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = _effective_port(scheme, parts.port)
    except ValueError:
        return False
    for entry in (item.strip() for item in no_proxy.split(",")):
        if entry == "*":
            return True
        pattern = _pattern(entry) if entry else None
        if pattern is not None and pattern.matches(scheme, host, port):
            return True
    return False


def _pattern(entry: str) -> Optional[_Pattern]:
    """The URL pattern httpx makes of one ``NO_PROXY`` entry; None if it makes none."""
    if "://" in entry:
        text = entry
    elif _is_address(entry, ipaddress.IPv4Address):
        text = f"all://{entry}"
    elif _is_address(entry, ipaddress.IPv6Address):
        text = f"all://[{entry}]"
    elif entry.lower() == "localhost":
        text = f"all://{entry}"
    else:
        text = f"all://*{entry}"
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        port = _effective_port(scheme, parts.port)
    except ValueError:  # not a URL httpx could read either (it would refuse to start)
        return None
    host = (parts.hostname or "").lower()
    return _Pattern("" if scheme == "all" else scheme, host, port)


def _effective_port(scheme: str, port: Optional[int]) -> Optional[int]:
    """The port as httpx compares it: None when it is the scheme's default."""
    return None if port == _DEFAULT_PORTS.get(scheme) else port


def _is_address(entry: str, kind: type) -> bool:
    try:
        kind(entry.split("/")[0])
    except ValueError:
        return False
    return True
