#!/usr/bin/env python3
"""Write a random scenario and the desired states it uses, for held-out runs.

usage: random-scenario.py SEED OUT_DIR   (SHIPPED=1: start from desired-state/)

OUT_DIR gets scenario.yaml, ds/ (the desired state the run starts from) and
ds2/ (the one a `desiredState` event switches to). scripts/random-scenarios.sh
plays many of them with `ballast simulate` and lists those that fail a request.
The declared propagationLag is always at or above the simulated one, and the
Capacity declares ballast's termination hook: every request lost is then one
ballast should have kept.

The documents are written as JSON, which is YAML too.
"""
import json
import os
import random
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = "ballast.dev/v1alpha1"


def document(kind, name, spec):
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def binding(group, port, min_healthy, lag):
    b = {"targetGroup": group, "containerName": "appContainer", "containerPort": port}
    if min_healthy is not None:
        b["minHealthy"] = min_healthy
    if lag is not None:
        b["propagationLag"] = lag
    return b


def service(r, shape, count):
    """The app service: `count` fixed, or scaled within the shape's bounds."""
    spec = {
        "region": "us-east-2",
        "cluster": "appCluster",
        "service": "appService",
        "tasks": {"count": count} if count is not None else {"min": shape["min"], "max": shape["max"]},
        "targetGroups": [
            binding("frontendTargetGroup", 80, shape["min_healthy"], shape["lag"]),
            binding("backendTargetGroup", 8000, shape["min_healthy"], shape["lag"]),
        ],
        "budget": {
            "maxDeregistrationsPerPass": r.choice([1, 2, 3]),
            "maxCountChangePerPass": r.choice([1, 2, 4]),
        },
    }
    if count is None:
        target = r.choice([50, 60, 70])
        spec["scaling"] = {
            "cpu": {
                "targetCpu": target,
                "scaleOut": {"threshold": target + 6, "period": "1m", "cooldown": "1m"},
                "scaleIn": {
                    "threshold": target - 6,
                    "period": "1m",
                    "step": r.choice(["100%", 1, 2, "50%"]),
                    "cooldown": r.choice(["1m", "3m", "5m"]),
                },
                "stabilizationWindow": r.choice(["1m", "5m"]),
            }
        }
    return document("Service", "app", spec)


def capacity(r, shape):
    zone_b = {"subnet": "subnet-0a1b2c3d4e5f60002", "zone": "us-east-2b", "mode": "alwaysOn"}
    if r.random() < 0.5:
        zone_b.update(mode="onDemand", whenInstancesAbove=r.choice([1, 2, 3]))
    spec = {
        "region": "us-east-2",
        "cluster": "appCluster",
        "autoScalingGroup": "ecsAutoScalingGroup",
        "minInstances": 1,
        "maxInstances": max(shape["max"], 10) // shape["per_instance"] + 1,
        "tasksPerInstance": shape["per_instance"],
        "headroom": r.choice([0, 0, 1]),
        "scaleInCooldown": r.choice(["2m", "5m"]),
        "maxChangePerPass": r.choice([1, 2, 3]),
        "zones": [
            {"subnet": "subnet-0a1b2c3d4e5f60001", "zone": "us-east-2a", "mode": "alwaysOn"},
            zone_b,
            {
                "subnet": "subnet-0a1b2c3d4e5f60003",
                "zone": "us-east-2c",
                "mode": "onDemand",
                "whenInstancesAbove": r.choice([3, 4]),
            },
        ],
        "terminationHook": {"heartbeatTimeout": "10m"},
    }
    return document("Capacity", "app-capacity", spec)


def event(r, minutes):
    at = f"{r.randint(5, minutes - 10)}m"
    kind = r.choice(["deploy", "terminate", "restart", "actor", "outage", "edit", "deploy", "terminate"])
    if kind == "deploy":
        return {"at": at, "deploy": {"service": "app"}}
    if kind == "terminate":
        return {"at": at, "terminateInstance": {"count": r.choice([1, 1, 2])}}
    if kind == "restart":
        return {"at": f"{at}{r.randint(0, 59)}s", "restartController": {}}
    if kind == "actor":
        return {"at": at, "actor": {"service": "app", "desiredCount": r.choice([1, 2, 5, 8])}}
    if kind == "outage":
        return {"at": at, "outage": {"duration": r.choice(["30s", "2m", "5m"])}}
    return {"at": at, "desiredState": "ds2"}


def scenario(r, seed):
    minutes = r.choice([60, 90, 120])
    points, t = [], 0
    while t < minutes:
        points.append({"at": f"{t}m", "rps": r.choice([20, 40, 100, 150, 200, 300, 400])})
        t += r.choice([5, 10, 15, 20, 30])
    aws = {
        "deregistrationPropagationLag": r.choice(["0s", "30s", "60s", "120s"]),
        "deregistrationDelay": r.choice(["30s", "120s", "300s"]),
    }
    if r.random() < 0.5:
        low, high = r.choice([(0, 100), (50, 100), (100, 200), (50, 200), (0, 200)])
        aws.update(minimumHealthyPercent=low, maximumPercent=high)
    if r.random() < 0.3:
        aws.update(healthCheckInterval=r.choice(["10s", "30s"]), healthyThreshold=r.choice([2, 3, 5]))
    if r.random() < 0.3:
        aws["taskStartDelay"] = r.choice(["10s", "60s"])
    if r.random() < 0.3:
        aws["consistencyLag"] = r.choice(["1s", "5s", "20s"])
    spec = {
        "duration": f"{minutes}m",
        "seed": r.randint(1, 10**6),
        "load": [{"service": "app", r.choice(["points", "steps"]): points}],
        "aws": aws,
        "events": [event(r, minutes) for _ in range(r.randint(1, 5))],
    }
    return document("Scenario", f"random-{seed}", spec)


def write(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def main():
    seed, out = int(sys.argv[1]), sys.argv[2]
    r = random.Random(seed)
    for d in ("ds", "ds2"):
        os.makedirs(os.path.join(out, d), exist_ok=True)
    low = r.choice([1, 2, 3])
    min_healthy = r.choice([None, 0, 1, 2])
    shape = {
        "min": low,
        "max": r.choice([6, 8, 10]),
        # Never above the tasks the service may run.
        "min_healthy": None if min_healthy is None else min(min_healthy, low),
        "per_instance": r.choice([1, 1, 2]),
        # At or above every simulated lag (0-120 s): unset is 2 minutes.
        "lag": r.choice([None, None, "3m"]),
    }
    fixed = r.random() < 0.25
    write(os.path.join(out, "ds", "app.yaml"), service(r, shape, r.choice([2, 3, 4]) if fixed else None))
    write(os.path.join(out, "ds", "capacity.yaml"), capacity(r, shape))
    edited = r.choice([2, 3, 5]) if fixed or r.random() < 0.3 else None
    write(os.path.join(out, "ds2", "app.yaml"), service(r, shape, edited))
    write(os.path.join(out, "ds2", "capacity.yaml"), capacity(r, shape))
    write(os.path.join(out, "scenario.yaml"), scenario(r, seed))
    if os.environ.get("SHIPPED"):
        # The example as shipped; the edit changes its task bounds.
        for f in ("app.yaml", "capacity.yaml"):
            for d in ("ds", "ds2"):
                shutil.copy(os.path.join(REPO, "desired-state", f), os.path.join(out, d, f))
        path = os.path.join(out, "ds2", "app.yaml")
        with open(path) as f:
            text = f.read()
        text = text.replace("min: 2", f"min: {r.choice([1, 3, 4])}").replace("max: 10", f"max: {r.choice([6, 8, 10])}")
        with open(path, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
