"""A worker process: `python -m container.serving.worker --listen-fd N --control-fd M --config J`.

Started only by the supervisor, which passes the shared listening socket, this worker's end of
its control socketpair, and the server settings as JSON.
"""

from __future__ import annotations

import argparse
import logging
import socket

import sklearn
import uvicorn

# Every estimator class an artifact can hold, imported before serving: the first load then
# costs milliseconds instead of the seconds of importing scikit-learn, XGBoost and LightGBM.
import container.families  # noqa: F401
from container.serving import heap
from container.serving.app import WorkerApp
from container.serving.config import config_from_json

# Keep-alive past SageMaker's front end idle time, so its pooled connections are not torn down.
KEEP_ALIVE_SECONDS = 75
# SageMaker sends SIGKILL 30 s after SIGTERM: finish in-flight requests well before that.
GRACEFUL_SHUTDOWN_SECONDS = 20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    args = parser.parse_args(argv)
    config = config_from_json(args.config)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s worker[%(process)d] %(levelname)s %(message)s",
    )
    # Inputs are validated (finite, right width) before they reach a model; skipping
    # scikit-learn's own re-checks saves ~10 % per call on small models.
    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    listener = socket.socket(fileno=args.listen_fd)
    control = socket.socket(fileno=args.control_fd)
    app = WorkerApp(config, control)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_config=None,
            log_level=config.log_level,
            server_header=False,
            date_header=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )

    def stop() -> None:
        server.should_exit = True

    app.on_supervisor_lost = stop
    # Everything imported so far lives as long as the process: keep collections from walking it.
    heap.start()
    server.run(sockets=[listener])


if __name__ == "__main__":
    main()
