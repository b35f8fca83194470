"""The cluster launcher file is validated offline the way `ray up` does it, and a broken copy fails."""

import copy
import pathlib

import pytest
import yaml

CLUSTER = pathlib.Path(__file__).resolve().parents[1] / "cluster"


def _validate(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))  # fills provider defaults, as `ray up` does
    validate_config(prepared)
    return prepared


def test_gpu_yaml_validates_like_ray_up():
    config = yaml.safe_load((CLUSTER / "gpu.yaml").read_text())
    prepared = _validate(config)
    assert prepared["head_node_type"] == "head"
    assert {"gpu_worker", "gpu_worker_spot"} <= set(prepared["available_node_types"])
    assert "2.60.0-py311" in prepared["docker"]["image"]
    assert any("pip install" in c and "consistency_dist" in c for c in prepared["setup_commands"])
    assert all("RAY_AUTH_MODE=token" in " ".join(prepared[k]) for k in ("head_start_ray_commands",
                                                                        "worker_start_ray_commands"))


@pytest.mark.parametrize("breakage, message", [
    ("unknown_head_type", "head_node_type` must be one of"),
    ("bad_field", "'gpus_per_node' was unexpected"),
    ("workers_wrong_type", "'eight' is not of type 'integer'"),
])
def test_a_broken_copy_fails(breakage, message):
    import jsonschema

    config = yaml.safe_load((CLUSTER / "gpu.yaml").read_text())
    if breakage == "unknown_head_type":
        config["head_node_type"] = "no_such_type"
    elif breakage == "bad_field":
        config["available_node_types"]["gpu_worker"]["gpus_per_node"] = 1  # not a node-type field
    else:
        config["available_node_types"]["gpu_worker"]["max_workers"] = "eight"
    with pytest.raises((ValueError, jsonschema.ValidationError), match=message):
        _validate(config)


def test_kuberay_manifest_runs_the_pipeline_with_token_auth():
    job = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())
    assert job["kind"] == "RayJob" and "consistency_dist.pipeline" in job["spec"]["entrypoint"]
    assert job["spec"]["rayClusterSpec"]["rayVersion"] == "2.60.0"
    workers = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert workers["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "RAY_AUTH_MODE", "value": "token"} in workers["env"]
