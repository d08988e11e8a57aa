"""The multi-model serving server behind `python -m container serve`.

One supervisor process owns the listening socket and the list of loaded models; one worker
process per core accepts connections on that shared socket and holds every loaded model in
memory. A model load or unload reaching any worker is applied by all of them before it is
answered, so each worker can serve every model and the platform's view stays consistent.

Modules: `config` (CLI flags and environment), `memory` (measuring and budgeting), `decode`
(request body -> model input), `encode` (predictions -> response body), `model` (a loaded model
and its predictor), `batching` (micro-batches per model), `control` (supervisor/worker messages),
`app` (the worker's ASGI application), `heap` (garbage collection kept off the request
path), `worker` and `supervisor` (the two process kinds). The cheapest predict for each model
is chosen at load by `container.fastpath`.
"""
