"""Fixtures of the lake profile's tests: a fresh catalog database on the test PostgreSQL server, a
data directory, and an S3-compatible store (moto's server) on loopback.

These tests need DuckDB 1.4.4 with the duckdb-ext-* wheels, so they run in ``.venv-lake``
(``.venv-lake/bin/python -m pytest pgy_pipeline_tests/lake``, as scripts/test.sh does); in the
main environment (DuckDB 2.0) they are skipped, saying why. scripts/test.sh sets
``PGY_REQUIRE_LAKE=1`` for its lake run: there a missing lake fails the tests instead.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

import pytest

from pgy_pipeline.errors import LakeUnavailableError
from pgy_pipeline.orchestration.resources import PgyDuckDBResource
from pgy_pipeline.warehouse.lake import LakeSettings, extension_directory
from pgy_pipeline_tests.suite_checks import postgres_url

S3_KEY = "pgy-test-key"
S3_SECRET = "pgy-test-secret"
S3_BUCKET = "pgy-lake"


def _lake_missing() -> str | None:
    try:
        extension_directory()
    except LakeUnavailableError:
        import duckdb

        return (
            f"the lake profile needs DuckDB 1.4.4 with the duckdb-ext-* wheels (this is DuckDB "
            f"{duckdb.__version__}): run these in .venv-lake, as scripts/test.sh does"
        )
    return None


@pytest.fixture(scope="session")
def lake_available() -> None:
    reason = _lake_missing()
    if reason:
        _lake_part_missing(reason)


def _lake_part_missing(reason: str) -> NoReturn:
    """Skip; fail instead where the lake must be there (``PGY_REQUIRE_LAKE=1``: scripts/test.sh's lake run)."""
    if os.environ.get("PGY_REQUIRE_LAKE") == "1":
        pytest.fail(f"{reason} (PGY_REQUIRE_LAKE=1: the lake must be there)", pytrace=False)
    pytest.skip(reason)


def conninfo(url: str, database: str) -> str:
    """A libpq key=value conninfo for ``database`` on the server at ``url``."""
    parts = urlsplit(url)
    items = {"dbname": database, "host": parts.hostname or "127.0.0.1", "port": str(parts.port or 5432)}
    if parts.username:
        items["user"] = unquote(parts.username)
    if parts.password:
        items["password"] = unquote(parts.password)
    return " ".join(f"{k}={v}" for k, v in items.items())


@pytest.fixture
def catalog(lake_available: None) -> Iterator[str]:
    """``ducklake:postgres:<conninfo>`` of a fresh, empty catalog database; dropped afterwards."""
    server_url = postgres_url("the lake catalog")
    import psycopg2

    name = f"pgy_lake_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(conninfo(server_url, urlsplit(server_url).path.lstrip("/") or "postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"ducklake:postgres:{conninfo(server_url, name)}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Store:
    endpoint: str
    bucket: str

    def settings(self, prefix: str) -> LakeSettings:
        return LakeSettings(
            data_path=f"s3://{self.bucket}/{prefix}/",
            s3_endpoint=self.endpoint,
            s3_region="us-east-1",
            s3_access_key_id=S3_KEY,
            s3_secret_access_key=S3_SECRET,
            s3_url_style="path",
            s3_use_ssl=False,
        )

    def keys(self, prefix: str) -> list[str]:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=f"http://{self.endpoint}",
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )
        found: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [o["Key"] for o in page.get("Contents", [])]
        return found


@pytest.fixture(scope="session")
def s3_store(lake_available: None) -> Iterator[S3Store]:
    """moto's S3 server on 127.0.0.1 with one bucket, for the whole session."""
    try:
        import moto.server as moto_server
    except ImportError:
        _lake_part_missing("moto's S3 server is not installed: pip install -e '.[lake-test]'")
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        ).create_bucket(Bucket=S3_BUCKET)
        yield S3Store(endpoint=f"127.0.0.1:{port}", bucket=S3_BUCKET)
    finally:
        server.stop()


def lake_resource(database: str, settings: LakeSettings) -> PgyDuckDBResource:
    return PgyDuckDBResource(
        database=database,
        lake_data_path=settings.data_path,
        s3_endpoint=settings.s3_endpoint,
        s3_region=settings.s3_region,
        s3_access_key_id=settings.s3_access_key_id,
        s3_secret_access_key=settings.s3_secret_access_key,
        s3_url_style=settings.s3_url_style,
        s3_use_ssl=settings.s3_use_ssl,
    )


@pytest.fixture
def local_lake(catalog: str, tmp_path: Path) -> PgyDuckDBResource:
    """A lake with its catalog in PostgreSQL and its data files in a local directory."""
    return lake_resource(catalog, LakeSettings(data_path=str(tmp_path / "lake_data")))
