"""Where the object store is and how to reach it, resolved the way AWS tools do.

Order for the endpoint: ``--endpoint``, ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the
profile's ``endpoint_url``; then, only when neither an endpoint nor credentials are
configured at all, a running embedded server; else AWS itself.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from objmount.errors import ConfigError

log = logging.getLogger(__name__)

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class S3Config:
    endpoint: str | None  # None means AWS's own endpoints
    region: str
    access_key: str
    secret_key: str
    session_token: str | None
    path_style: bool
    allow_http: bool
    source: str  # where the endpoint came from, for messages

    def describe(self) -> str:
        return f"{self.endpoint or 'AWS S3'} ({self.source})"


@dataclass(frozen=True)
class _Creds:
    access_key: str
    secret_key: str
    token: str | None


def _is_local_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def _no_instance_metadata(disable: bool) -> Iterator[None]:
    """Instance-metadata credentials only make sense on AWS: never probe for them (a
    link-local HTTP call that hangs off EC2) when another endpoint is configured. botocore
    reads the switch from os.environ; it is set only for the lookup, so that the
    programs `objmount run` starts get the user's environment unchanged."""
    name = "AWS_EC2_METADATA_DISABLED"
    if not disable or name in os.environ:
        yield
        return
    os.environ[name] = "true"
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name)
    return None if value is None or value == "" else value.lower() in _TRUE


def resolve_s3_config(
    env: Mapping[str, str] | None = None,
    *,
    endpoint: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    path_style: bool | None = None,
    allow_http: bool | None = None,
) -> S3Config:
    import botocore.session  # slow import: only when a store is really needed

    env = os.environ if env is None else env
    profile = profile or env.get("AWS_PROFILE") or None
    session = botocore.session.Session(profile=profile)
    try:
        scoped = session.get_scoped_config()
    except Exception as exc:  # botocore raises ProfileNotFound and friends
        raise ConfigError(f"AWS profile {profile!r}: {exc}") from exc

    source = "--endpoint"
    if not endpoint:
        for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
            if env.get(name):
                endpoint, source = env[name], name
                break
    if not endpoint and scoped.get("endpoint_url"):
        endpoint, source = str(scoped["endpoint_url"]), f"profile {profile or 'default'}"

    if endpoint and "://" not in endpoint:
        # A bare host:port: the scheme is the user's call (--allow-http).
        endpoint = ("http://" if allow_http else "https://") + endpoint
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"endpoint {endpoint!r} is not an http(s) URL")

    creds: _Creds | None
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        creds = _Creds(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"],
                       env.get("AWS_SESSION_TOKEN") or None)
    else:
        try:
            with _no_instance_metadata(bool(endpoint)):
                found = session.get_credentials()
        except Exception as exc:
            raise ConfigError(f"cannot read AWS credentials: {exc}") from exc
        frozen = found.get_frozen_credentials() if found is not None else None
        creds = (_Creds(frozen.access_key or "", frozen.secret_key or "", frozen.token)
                 if frozen else None)

    if endpoint is None and creds is None:
        from objmount import server

        running = server.embedded_status()
        if running is not None:
            log.info("no endpoint or credentials configured: using the embedded store at %s",
                     running.endpoint)
            return S3Config(running.endpoint, "us-east-1", running.access_key,
                            running.secret_key, None, True, True, "embedded server")

    if creds is None:
        raise ConfigError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE,"
            " or start the embedded store with 'objmount server start'"
        )
    region = (region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
              or scoped.get("region") or "us-east-1")
    if path_style is None:
        path_style = _flag(env, "OBJMOUNT_PATH_STYLE")
    if path_style is None:
        path_style = endpoint is not None and _is_local_host(urlsplit(endpoint).hostname or "")
    http = endpoint is not None and urlsplit(endpoint).scheme == "http"
    if not creds.access_key or not creds.secret_key:
        raise ConfigError("incomplete S3 credentials: both an access key and a secret key "
                          "are needed")
    return S3Config(endpoint, str(region), creds.access_key, creds.secret_key,
                    creds.token or None, bool(path_style), http, source)
