"""Seed of the modeldeploy repo: approved models onto the multi-model endpoint.

Kept import-free: the invoker Lambda ships `modeldeploy/invoker.py` and `modeldeploy/routing.py`
with this file and nothing else (stdlib and boto3 only).
"""
