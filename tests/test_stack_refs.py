"""What `Ref` returns is the resource schema's primary identifier, not always a name: the invoker
must be handed the endpoint's name (InvokeEndpoint takes a name), whatever the stack refers to."""

from __future__ import annotations

from typing import Any

from modeldeploy.build import TEMPLATE, load_template
from tests.handler_requirements import provider_schema


def ref_returns(template: dict[str, Any], node: Any) -> str | None:
    """The property a `Ref` to one of the template's resources returns, per its schema."""
    if isinstance(node, dict) and set(node) == {"Ref"} and node["Ref"] in template["Resources"]:
        schema = provider_schema(template["Resources"][node["Ref"]]["Type"])
        [identifier] = schema["primaryIdentifier"]
        return identifier.rsplit("/", 1)[-1]
    return None


def test_the_endpoint_schema_says_ref_is_its_arn() -> None:
    # The fact the check relies on (the AWS::SageMaker::Endpoint docs say the same).
    template = {"Resources": {"Endpoint": {"Type": "AWS::SageMaker::Endpoint"}}}
    assert ref_returns(template, {"Ref": "Endpoint"}) == "EndpointArn"


def test_the_invoker_gets_names_where_it_expects_names() -> None:
    template = load_template(TEMPLATE)
    environment = template["Resources"]["InvokerFunction"]["Properties"]["Environment"]
    for variable, value in environment["Variables"].items():
        returned = ref_returns(template, value)
        if returned is not None and "ARN" not in variable:
            assert not returned.endswith("Arn"), f"{variable} is given {value}, an ARN"
