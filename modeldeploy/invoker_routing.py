"""The invoker's view of its stage's routing table: cached for a TTL, read from S3, looked up.

A table read at most once per TTL per execution environment; on a read failure the last good
table keeps serving (a routing outage should not fail every request), and without one the
failure becomes the 503 that names its kind (an S3 permission problem or an outage). A missing
table is no failure: nothing has been deployed, 404. Apart from the request flow because its
state (the cached table, its expiry, the lock) is the invoker's only shared state across
concurrent calls, and its failure policy is a decision of its own.

Standard library only (boto3 imported where the S3 reader is built): part of the invoker
Lambda's zip (modeldeploy.build).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from modeldeploy.invoker_replies import Reply
from modeldeploy.routing import Route, RoutingTable, RoutingTableError

log = logging.getLogger("modeldeploy.invoker")


class TableMissing(Exception):
    """No routing table has been written for the stage yet (nothing deployed)."""


class TableForbidden(Exception):
    """The invoker's role may not read the routing table (S3 AccessDenied)."""


class RoutingCache:
    def __init__(
        self,
        read_table: Callable[[], bytes],
        ttl_seconds: float,
        clock: Callable[[], float],
        stage: str,
    ) -> None:
        self.read_table = read_table
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.stage = stage
        self._table: RoutingTable | None = None
        self._expires = float("-inf")
        self._lock = threading.Lock()

    def table(self, refresh: bool = False) -> RoutingTable | None:
        with self._lock:
            now = self.clock()
            if not refresh and now < self._expires:
                return self._table
            try:
                self._table = RoutingTable.from_json(self.read_table())
            except TableMissing:
                self._table = None
            except RoutingTableError as error:
                raise Reply(502, "RoutingTableError", str(error)) from None
            except TableForbidden as error:
                # The caller learns what kind of problem it is; the bucket, key and role stay
                # in the function's log for the operators.
                log.error("AccessDenied reading the routing table %s", error)
                if self._table is None:
                    raise Reply(
                        503,
                        "RoutingForbidden",
                        "the invoker is not allowed to read its routing table (S3 AccessDenied); "
                        "the stage's operators must fix the invoker role's S3 permissions",
                    ) from None
                log.warning("using the cached routing table")
            except Exception as error:
                if self._table is None:
                    raise Reply(
                        503,
                        "RoutingUnavailable",
                        f"cannot read the routing table: {error}",
                        retry_after=True,
                    ) from None
                # Serving from the last good table beats failing every request.
                log.warning("routing table unreadable, using the cached one: %s", error)
            self._expires = now + self.ttl_seconds
            return self._table

    def route(self, dataset: str, refresh: bool = False) -> Route:
        """The dataset's live route, or the 404 saying whether anything is deployed at all."""
        table = self.table(refresh)
        if table is None or not table.routes:
            raise Reply(
                404,
                "NothingDeployed",
                f"nothing deployed to {self.stage or 'this stage'}: no dataset has a live model "
                "yet (approve a model version to deploy one)",
            )
        route = table.routes.get(dataset)
        if route is None:
            raise Reply(
                404,
                "NoLiveModel",
                f"dataset '{dataset}' is unknown or has no live model in this stage "
                f"(datasets with a live model: {', '.join(sorted(table.routes))})",
            )
        return route


def s3_reader(uri: str) -> Callable[[], bytes]:
    """Reads the table at s3://bucket/key (checked by InvokerSettings); NoSuchKey is
    TableMissing, AccessDenied TableForbidden."""
    import boto3  # here, so that importing the module for tests stays cheap

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3")

    def read() -> bytes:
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.ClientError as error:
            # NoSuchKey needs s3:ListBucket as well; without it S3 says AccessDenied instead.
            code = error.response.get("Error", {}).get("Code")
            if code == "NoSuchKey":
                raise TableMissing(uri) from None
            if code == "AccessDenied":
                raise TableForbidden(f"{uri}: {error}") from None
            raise

    return read
