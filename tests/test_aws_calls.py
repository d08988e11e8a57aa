"""One classification of failed AWS calls (modelbuild.aws_calls), shared by `pipeline run`,
`mme trials --aws` and modeldeploy's storage and registry: throttling is retryable everywhere."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from container.errors import InputError, ServiceError
from modelbuild.aws_calls import aws_problem, is_denied, is_outage, pages


def client_error(code: str, status: int = 400, operation: str = "ListPipelines") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} happened"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (client_error("ThrottlingException"), True),
        (client_error("SlowDown", 503), True),
        (client_error("Anything", 429), True),
        (client_error("InternalFailure", 500), True),
        (EndpointConnectionError(endpoint_url="https://sagemaker.eu-west-1.amazonaws.com"), True),
        (client_error("AccessDeniedException", 403), False),
        (client_error("ValidationException"), False),
    ],
)
def test_an_outage_is_told_from_a_refusal(error: Exception, outage: bool) -> None:
    assert is_outage(error) is outage


def test_throttling_is_a_service_error_naming_the_call() -> None:
    problem = aws_problem(client_error("ThrottlingException"), "starting the pipeline")
    assert isinstance(problem, ServiceError)
    assert problem.retryable
    assert "starting the pipeline: ListPipelines failed: ThrottlingException" in str(problem)


def test_a_refusal_is_an_input_error_with_its_hint() -> None:
    error = client_error("AccessDeniedException", 403)
    problem = aws_problem(error, hint="needs sagemaker:ListPipelines")
    assert type(problem) is InputError
    assert is_denied(error)
    assert str(problem).endswith("AccessDeniedException happened; needs sagemaker:ListPipelines")


def test_pages_follows_next_token() -> None:
    answers = {None: {"Items": [1, 2], "NextToken": "b"}, "b": {"Items": [3]}}
    calls: list[Any] = []

    def call(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        return answers[kwargs.get("NextToken")]

    assert list(pages(call, "Items", Prefix="p")) == [1, 2, 3]
    assert calls == [{"Prefix": "p"}, {"Prefix": "p", "NextToken": "b"}]
