"""The inference log store on AWS: a DynamoDB table per stage with TTL, keyed dataset / time
(why DynamoDB: `modeldeploy.inference_log`'s docstring), written by `DynamoDBSink` and read by
`read_dynamodb`. boto3 is imported on use; the invoker Lambda ships this file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from modeldeploy.inference_log import (
    DEFAULT_TTL_DAYS,
    RECORD_FIELDS,
    InferenceRecord,
    fit_for_store,
    wanted,
)

# -- AWS: DynamoDB -----------------------------------------------------------------------------
#
# Item: pk = dataset ("-" when unreadable), sk = "<epoch ms, 13 digits>#<request id>" (time
# order within a dataset), every record field as an attribute (an item written before a field
# existed lacks it, and reads back with the field's default), and `expires_at` (epoch seconds)
# for the table's TTL.


def _attribute(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    return {"S": str(value)}


def _value(attribute: dict[str, Any]) -> Any:
    if "NULL" in attribute:
        return None
    if "N" in attribute:
        text = attribute["N"]
        return float(text) if any(c in text for c in ".eE") else int(text)
    if "BOOL" in attribute:
        return attribute["BOOL"]
    return attribute["S"]


def dynamodb_item(entry: InferenceRecord, ttl_days: float) -> dict[str, Any]:
    item = {name: _attribute(getattr(entry, name)) for name in RECORD_FIELDS}
    item["pk"] = {"S": entry.dataset or "-"}
    item["sk"] = {"S": f"{int(entry.time * 1000):013d}#{entry.request_id}"}
    item["iso_time"] = {"S": entry.iso_time}
    item["expires_at"] = {"N": str(int(entry.time + ttl_days * 86_400))}
    return item


class DynamoDBSink:
    def __init__(self, table: str, client: Any, ttl_days: float = DEFAULT_TTL_DAYS) -> None:
        self.table = table
        self.client = client
        self.ttl_days = ttl_days

    def write(self, records: Sequence[InferenceRecord]) -> int:
        requests = [
            {"PutRequest": {"Item": dynamodb_item(fit_for_store(r), self.ttl_days)}}
            for r in records
        ]
        unprocessed = self.client.batch_write_item(RequestItems={self.table: requests}).get(
            "UnprocessedItems", {}
        )
        pending = unprocessed.get(self.table, [])
        if pending:
            # One retry for throttled items; the writer must keep up with the invoker.
            retry = self.client.batch_write_item(RequestItems={self.table: pending})
            pending = retry.get("UnprocessedItems", {}).get(self.table, [])
        return len(pending)


def dynamodb_client(timeout_seconds: float = 1.0) -> Any:
    """A client that gives up fast: a slow store must not back the queue up for long."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        config=Config(
            connect_timeout=timeout_seconds,
            read_timeout=timeout_seconds,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def read_dynamodb(
    client: Any,
    table: str,
    dataset: str,
    since: float,
    until: float | None = None,
    *,
    include_errors: bool = False,
    include_smoke: bool = False,
) -> Iterator[InferenceRecord]:
    """The successful real-traffic invocations of a dataset from `since` on, in time order;
    with `include_errors` the refused and failed ones too, with `include_smoke` the smoke tests'
    too."""
    upper = f"{int((until if until is not None else 9_999_999_999) * 1000):013d}#~"
    arguments: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :dataset AND sk BETWEEN :since AND :until",
        "FilterExpression": "#status = :ok",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {
            ":dataset": {"S": dataset},
            ":since": {"S": f"{int(since * 1000):013d}#"},
            ":until": {"S": upper},
            ":ok": {"N": "200"},
        },
    }
    if include_errors:
        del arguments["FilterExpression"], arguments["ExpressionAttributeNames"]
        del arguments["ExpressionAttributeValues"][":ok"]
    while True:
        page = client.query(**arguments)
        for item in page.get("Items", []):
            record = InferenceRecord(
                **{name: _value(item[name]) for name in RECORD_FIELDS if name in item}
            )
            if wanted(record, include_smoke):
                yield record
        if "LastEvaluatedKey" not in page:
            return
        arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
