"""`mme`'s command groups, one module each; `local.cli` composes them under the root."""
