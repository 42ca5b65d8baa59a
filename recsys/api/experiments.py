"""Experiments over HTTP (docs/experiments.md): create, list, stop and report them. Every call
needs the API key."""
from __future__ import annotations

from flask import Blueprint

from recsys.api.context import current_serving, json_body, json_response, require_key, use
from recsys.api.schemas import check_id, parse_body
from recsys.control.experiments import Experiment
from recsys.errors import InvalidRequest, NotFound
from recsys.worker import experiments, writes
from recsys.worker.serving import Serving

__all__ = ["bp"]

bp = Blueprint("recsys_experiments", __name__)


@bp.get("/v1/experiments")
def list_experiments():
    require_key()
    serving = current_serving()
    return json_response({"experiments": [e.model_dump(mode="json") for e in _store(serving).all()]})


@bp.post("/v1/experiments")
def create_experiment():
    require_key()
    serving = current_serving()
    experiment = parse_body(Experiment, json_body())
    if experiment.id is not None or experiment.status != "running":
        raise InvalidRequest("a new experiment's id and status are the server's; leave them out")
    use(serving.recommender())
    stored = experiments.create_experiment(serving, experiment)
    return json_response({"experiment": stored.model_dump(mode="json")}, status=201)


@bp.get("/v1/experiments/<experiment_id>")
def get_experiment(experiment_id: str):
    require_key()
    return json_response({"experiment": _found(current_serving(), experiment_id).model_dump(mode="json")})


@bp.post("/v1/experiments/<experiment_id>/stop")
def stop_experiment(experiment_id: str):
    require_key()
    serving = current_serving()
    _found(serving, experiment_id)
    return json_response({"experiment": experiments.stop_experiment(serving, experiment_id).model_dump(mode="json")})


@bp.get("/v1/experiments/<experiment_id>/report")
def experiment_report(experiment_id: str):
    require_key()
    serving = current_serving()
    return json_response(experiments.experiment_report(serving, use(serving.recommender()),
                                                  _found(serving, experiment_id)))


def _store(serving: Serving):
    if serving.store is None or serving.breaker.open:
        raise writes.redis_down(serving, "the experiments")
    return serving.store.experiments


def _found(serving: Serving, experiment_id: str) -> Experiment:
    check_id(experiment_id, "experiment")
    experiment = _store(serving).get(experiment_id)
    if experiment is None:
        raise NotFound(f"no experiment {experiment_id!r}", experiment_id=experiment_id)
    return experiment
