"""The IAM evaluator the permission tests rely on, checked against the behaviour AWS documents
(policy evaluation logic, wildcards, condition operators, missing keys)."""

from __future__ import annotations

import pytest

from tests.iam_policy import Decision, Request, decide, glob_matches, role_statements

ENDPOINT = "arn:aws:sagemaker:eu-west-1:123456789012:endpoint/churn-dev"


def allow(action: object, resource: object = "*", **extra: object) -> dict[str, object]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_actions_match_case_insensitively_and_resources_case_sensitively() -> None:
    statements = [allow("SageMaker:invokeendpoint", "arn:aws:sagemaker:*:*:endpoint/Churn-*")]
    # SageMaker lowercases its ARNs: a grant spelled with the project's capitals misses.
    assert (
        decide(statements, Request("sagemaker:InvokeEndpoint", ENDPOINT)) is Decision.IMPLICIT_DENY
    )
    statements = [allow("SageMaker:invoke*", "arn:aws:sagemaker:*:*:endpoint/churn-*")]
    assert decide(statements, Request("sagemaker:InvokeEndpoint", ENDPOINT)) is Decision.ALLOW


def test_wildcards() -> None:
    assert glob_matches("a?c*", "abcdef")
    assert not glob_matches("a?c", "ac")
    # Regex metacharacters in ARNs are literal.
    assert not glob_matches("arn:aws:s3:::my.bucket/*", "arn:aws:s3:::myxbucket/k")


def test_explicit_deny_wins_and_nothing_is_implicitly_allowed() -> None:
    statements = [
        allow("iam:*", "arn:aws:iam::1:role/*"),
        {"Effect": "Deny", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/admin"},
    ]
    assert decide(statements, Request("iam:PassRole", "arn:aws:iam::1:role/admin")) is (
        Decision.EXPLICIT_DENY
    )
    assert decide(statements, Request("iam:PassRole", "arn:aws:iam::1:role/app")) is Decision.ALLOW
    assert decide(statements, Request("s3:GetObject", "arn:aws:s3:::b/k")) is (
        Decision.IMPLICIT_DENY
    )


def test_not_action_and_not_resource() -> None:
    statements = [{"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"}]
    assert decide(statements, Request("s3:GetObject", "arn:aws:s3:::b/k")) is Decision.ALLOW
    assert decide(statements, Request("s3:GetObject", "arn:aws:s3:::secret/k")) is (
        Decision.IMPLICIT_DENY
    )
    assert decide(statements, Request("iam:GetRole", "*")) is Decision.IMPLICIT_DENY


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ({"StringEquals": {"aws:RequestTag/p": "x"}}, {"aws:requesttag/p": "x"}, True),
        ({"StringEquals": {"aws:RequestTag/p": "x"}}, {"aws:RequestTag/p": "y"}, False),
        # A positive operator on a missing key fails; its IfExists form and negations hold.
        ({"StringEquals": {"aws:RequestTag/p": "x"}}, {}, False),
        ({"StringEqualsIfExists": {"aws:RequestTag/p": "x"}}, {}, True),
        ({"StringNotEquals": {"aws:RequestTag/p": "x"}}, {}, True),
        ({"StringNotEquals": {"aws:RequestTag/p": "x"}}, {"aws:RequestTag/p": "x"}, False),
        ({"StringLike": {"s3:prefix": ["dev/*", "prod/*"]}}, {"s3:prefix": "prod/routing"}, True),
        ({"StringLike": {"s3:prefix": ["dev/*"]}}, {"s3:prefix": "pipelines/x"}, False),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:events:*:1:rule/x-*"}}, {}, False),
        ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:SecureTransport": "true"}, False),
        ({"Null": {"aws:RequestTag/p": "true"}}, {}, True),
        ({"Null": {"aws:RequestTag/p": "false"}}, {}, False),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["b", "a"]}, True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["b", "a"]}, False),
        # Two keys in one statement must both hold.
        (
            {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com", "k": "v"}},
            {"iam:PassedToService": "lambda.amazonaws.com"},
            False,
        ),
    ],
)
def test_conditions(
    condition: dict[str, object], context: dict[str, object], expected: bool
) -> None:
    statements = [allow("s3:ListBucket", "*", Condition=condition)]
    request = Request("s3:ListBucket", "arn:aws:s3:::b", context)  # type: ignore[arg-type]
    assert (decide(statements, request) is Decision.ALLOW) is expected


def test_an_unknown_operator_is_refused_not_guessed() -> None:
    statements = [allow("s3:*", Condition={"NumericLessThan": {"s3:max-keys": "10"}})]
    with pytest.raises(ValueError, match="NumericLessThan"):
        decide(statements, Request("s3:ListBucket", "arn:aws:s3:::b", {"s3:max-keys": "5"}))


def test_role_statements_resolve_conditions_and_attached_policies() -> None:
    from tests.cfn_support import Evaluator

    template = {
        "Parameters": {"Name": {"Type": "String"}},
        "Conditions": {"Never": {"Equals": ["a", "b"]}},
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [
                        {
                            "PolicyDocument": {
                                "Statement": [
                                    allow("s3:GetObject", {"Sub": "arn:aws:s3:::${Name}/*"}),
                                    {"If": ["Never", allow("iam:*"), {"Ref": "AWS::NoValue"}]},
                                ]
                            }
                        }
                    ]
                },
            },
            "Extra": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "Roles": [{"Ref": "Role"}],
                    "PolicyDocument": {"Statement": [allow("sns:Publish")]},
                },
            },
        },
    }
    statements = role_statements(template, "Role", Evaluator(template, Name="bucket"))
    assert statements == [allow("s3:GetObject", "arn:aws:s3:::bucket/*"), allow("sns:Publish")]
