"""The `endpoint` commands, one module per concern; `modeldeploy.cli` composes them."""
