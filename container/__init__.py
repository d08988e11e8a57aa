"""Code every SageMaker job and the endpoint run: preprocess, train, evaluate (and later serve).

Nothing here may depend on running inside Docker: every SageMaker root path is overridable.
"""
