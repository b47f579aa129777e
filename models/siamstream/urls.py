"""What may be shown of a stream URL: the library's frame sources and the service's cameras both name
streams (in source names, errors, listings, logs and result files) by this, and it loads nothing heavy."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def without_credentials(url: str) -> str:
    """`url` without its user name, password, query and fragment, since cameras take credentials and
    tokens in the user part or the query. Scheme, host, port and path are kept as written."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
