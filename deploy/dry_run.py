"""The first day, against the AWS emulator: does ballast, with exactly the
actions its task role allows, bring the stack's fresh system to the
desired state?

Run it through deploy/dry-run.sh (which installs what it needs and builds
ballast). In one process it

1. starts moto (and the CloudWatch bridge, re-signing what it forwards),
2. creates deploy/cloudformation.yaml in moto's CloudFormation, as step 4
   of deploy/README.md does (services enabled), leaving out only what
   moto's CloudFormation rejects (named below),
3. fills desired-state/ with the stack's subnets as the deploy workflow
   does (deploy/fill-desired-state.sh),
4. lints the task role's policy, as the stack created it, with parliament,
5. turns IAM enforcement on and runs ballast (`apply --once`, then `plan`)
   as an IAM identity holding exactly the task role's actions, playing ECS
   in between (the agent registering the group's instances, the scheduler
   starting each service's tasks, one app task per instance),
6. and checks the end state: appService at the desired state's minimum of
   2 tasks, every task's instance registered in both target groups, both
   alarms there with ballast's tag, the group grown to hold the tasks, and
   `ballast plan` reporting no changes.

What it cannot prove: moto authorizes most actions against "*" and skips
Condition, so a scoped statement can only be tried as "the action on *".
The identity therefore holds the role's actions, each on "*": this run
proves no action is missing; tests/iam.rs proves the scoping, by
evaluating the policy as AWS does. A negative control (the same run
without ecs:ListTasks) shows that enforcement is on.

Exits non-zero, saying what failed, on any problem. Usage:
    dry_run.py --ballast PATH [--keep DIR]
"""

import argparse
import ast
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.error
import urllib.request
import warnings
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-2"
STACK = "app-stack"
CLUSTER = "appCluster"
APP_SERVICE = "appService"
# Resources moto's CloudFormation refuses, and why. Everything else in the
# template is created as written (types moto does not implement at all,
# like the API Gateway VPC link and stage, it skips with a warning; they
# play no part in what ballast does).
LEFT_OUT = {
    "FrontendListener": "moto's CloudFormation makes the NLB an application load balancer "
    "and then refuses TCP listeners; ballast never reads listeners",
    "BackendListener": "as FrontendListener",
}
MAX_PASSES = 8


def fail(message):
    print(f"dry-run: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def step(message):
    print(f"dry-run: {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# The emulator.


def start_moto():
    """moto in this process, so that enforcement can be switched on later."""
    # moto names every resource type its CloudFormation skips, and logs
    # each request; neither is news here.
    warnings.filterwarnings("ignore")
    for name in ("moto", "werkzeug"):
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "false")
    # What moto leaves out, as the Rust tests' emulator has it (task
    # protection calls, the ECS agent's attributes, completed deployments).
    sys.path.insert(0, str(ROOT / "tests/emulator"))
    import moto_shims

    moto_shims.install()
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # Hold tasks in RUNNING: moto otherwise moves them a step on every read.
    body = b'{"model_name":"ecs::task","transition":{"progression":"manual","times":1000000}}'
    req = urllib.request.Request(url + "/moto-api/state-manager/set-transition", data=body, method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    return url


def start_bridge(moto_url, credentials):
    """The tests' CloudWatch bridge, re-signing each forwarded request.

    The bridge turns ballast's CBOR requests into JSON, which breaks their
    SigV4 signature; with enforcement on moto checks it, so the bridge
    signs the JSON request again with the caller's own key (looked up by
    its access key id in `credentials`).
    """
    sys.path.insert(0, str(ROOT / "tests/emulator"))
    import cloudwatch_bridge
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    real = urllib.request

    def urlopen(request, timeout=30):
        headers = dict(request.header_items())
        auth = headers.get("Authorization", "")
        key_id = auth.split("Credential=", 1)[-1].split("/", 1)[0] if "Credential=" in auth else None
        if key_id in credentials:
            ak, sk, token = credentials[key_id]
            keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "x-amz-target", "x-moto-account-id")}
            aws = AWSRequest(method="POST", url=request.full_url, data=request.data, headers=keep)
            SigV4Auth(Credentials(ak, sk, token), "monitoring", REGION).add_auth(aws)
            request = real.Request(request.full_url, data=request.data, headers=dict(aws.headers), method="POST")
        return real.urlopen(request, timeout=timeout)

    shim = types.SimpleNamespace(
        request=types.SimpleNamespace(Request=real.Request, urlopen=urlopen), error=urllib.error
    )
    cloudwatch_bridge.urllib = shim
    cloudwatch_bridge.Bridge.moto_url = moto_url
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), cloudwatch_bridge.Bridge)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}"


def client(boto3, service, url, key):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
    )


# ---------------------------------------------------------------------------
# The stack.


def load_template():
    from cfnlint.decode import cfn_yaml

    template = cfn_yaml.loads((ROOT / "deploy/cloudformation.yaml").read_text())
    # cfn-lint's loader marks values with their positions; plain JSON drops that.
    template = json.loads(json.dumps(template, default=str))
    for logical in LEFT_OUT:
        if logical not in template["Resources"]:
            fail(f"{logical} is no longer in the template: update LEFT_OUT in {__file__}")
        del template["Resources"][logical]
    return template


def create_stack(cfn, template):
    cfn.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(template),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[
            {"ParameterKey": "GitHubRepository", "ParameterValue": "owner/repo"},
            {"ParameterKey": "ServicesEnabled", "ParameterValue": "true"},
        ],
    )
    for _ in range(200):
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    if stack["StackStatus"] != "CREATE_COMPLETE":
        fail(f"the stack did not create: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
        for r in cfn.list_stack_resources(StackName=STACK)["StackResourceSummaries"]
    }
    return outputs, resources


def fill_desired_state(ec2, outputs, into):
    subnets = {s["SubnetId"]: s["AvailabilityZone"] for s in ec2.describe_subnets()["Subnets"]}
    a, b = outputs["PrivateSubnetA"], outputs["PrivateSubnetB"]
    shutil.copytree(ROOT / "desired-state", into)
    env = dict(os.environ, YQ=str(ROOT / ".venv/bin/yq"))
    args = [str(into), REGION, a, subnets[a], b, subnets[b]]
    run = subprocess.run(["bash", str(ROOT / "deploy/fill-desired-state.sh"), *args], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"fill-desired-state.sh: {run.stderr.strip()}")
    step(run.stdout.strip())
    return a, b


def lint_policy(document):
    """parliament on the task role's policy; the documented ListTasks
    exception (Resource "*" with the ecs:cluster condition) is expected."""
    from parliament import analyze_policy_string

    policy = analyze_policy_string(json.dumps(document))
    problems = []
    for f in policy.findings:
        text = f"{f.issue}: {f.detail} {f.location}"
        if f.issue == "RESOURCE_STAR" and f.detail == ["ecs:ListTasks"]:
            continue
        problems.append(text)
    if problems:
        fail("parliament finds problems in the task role's policy:\n  " + "\n  ".join(problems))
    step("parliament: the task role's policy has no findings (ListTasks on * is the documented exception)")


def actions_of(document):
    actions = set()
    for s in document["Statement"]:
        if s.get("Effect") == "Allow":
            a = s["Action"]
            actions.update([a] if isinstance(a, str) else a)
    return sorted(actions)


def create_identity(iam, name, actions):
    """An IAM user allowed exactly `actions`, each on "*" (all moto can check).

    moto names a request's action after the service in its signature, and
    CloudWatch signs as "monitoring": each cloudwatch: action is granted
    under that name too, and nothing else is added.
    """
    actions = sorted(set(actions) | {"monitoring:" + a.split(":", 1)[1] for a in actions if a.startswith("cloudwatch:")})
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}
    iam.put_user_policy(UserName=name, PolicyName="task-role-actions", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


# ---------------------------------------------------------------------------
# Playing ECS.


class Ecs:
    """The ECS agent and scheduler moto does not run."""

    def __init__(self, ecs, autoscaling):
        self.ecs = ecs
        self.autoscaling = autoscaling

    def register_instances(self):
        """Every InService instance of the group joins the cluster once."""
        known = set()
        arns = self.ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"]
        if arns:
            for ci in self.ecs.describe_container_instances(cluster=CLUSTER, containerInstances=arns)["containerInstances"]:
                known.add(ci["ec2InstanceId"])
        group = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["ecsAutoScalingGroup"])[
            "AutoScalingGroups"
        ][0]
        for inst in group["Instances"]:
            if inst["InstanceId"] not in known:
                self.ecs.register_container_instance(
                    cluster=CLUSTER, instanceIdentityDocument=json.dumps({"instanceId": inst["InstanceId"]})
                )

    def tasks(self, service):
        arns = self.ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"]
        if not arns:
            return []
        tasks = self.ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
        return [t for t in tasks if t.get("group") == f"service:{service}" and t["lastStatus"] == "RUNNING"]

    def schedule(self, service):
        """Run the service's desired count, one task per instance for the
        app (static host ports), as ECS would."""
        svc = self.ecs.describe_services(cluster=CLUSTER, services=[service])["services"][0]
        running = self.tasks(service)
        want = svc["desiredCount"]
        for t in running[want:]:
            self.ecs.stop_task(cluster=CLUSTER, task=t["taskArn"], reason="scaled in by the dry run's scheduler")
        busy = {t["containerInstanceArn"] for t in running}
        free = [a for a in self.ecs.list_container_instances(cluster=CLUSTER)["containerInstanceArns"] if a not in busy]
        for ci in free[: max(0, want - len(running))]:
            self.ecs.start_task(
                cluster=CLUSTER,
                taskDefinition=svc["taskDefinition"],
                containerInstances=[ci],
                startedBy="ecs-svc/dry-run",
                group=f"service:{service}",
            )

    def instance_of(self, task):
        ci = self.ecs.describe_container_instances(cluster=CLUSTER, containerInstances=[task["containerInstanceArn"]])
        return ci["containerInstances"][0]["ec2InstanceId"]


# ---------------------------------------------------------------------------
# ballast.


def trouble(out):
    """Lines of ballast's output that say a call was refused or a read
    failed. (moto answers a refused ECS call in XML, which the SDK reports
    as an unreadable response, so "unobserved" is the sign, not the code.)"""
    signs = ("AccessDenied", "not authorized", "[unobserved]", "unreachable")
    return [line for line in out.splitlines() if any(s in line for s in signs)]


def ballast(binary, args, desired, env):
    run = subprocess.run([binary, *args, "--cloud", "aws", str(desired)], env=env, capture_output=True, text=True, timeout=120)
    return run.returncode, run.stdout + run.stderr


def ballast_env(moto_url, bridge_url, key, home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=key[0],
        AWS_SECRET_ACCESS_KEY=key[1],
        AWS_REGION=REGION,
        AWS_ENDPOINT_URL=moto_url,
        AWS_ENDPOINT_URL_CLOUDWATCH=bridge_url,
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        RUST_LOG="warn",
    )
    return env


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ballast", required=True, help="the ballast binary")
    parser.add_argument("--keep", help="write the filled desired state here (default: a temporary directory)")
    opts = parser.parse_args()
    started = time.monotonic()

    import boto3
    from moto import settings

    work = Path(opts.keep) if opts.keep else Path(tempfile.mkdtemp(prefix="ballast-dry-run-"))
    (work / "aws").mkdir(parents=True, exist_ok=True)
    for f in ("config", "credentials"):
        (work / "aws" / f).write_text("")

    moto_url = start_moto()
    credentials = {}
    bridge_url = start_bridge(moto_url, credentials)
    step(f"moto at {moto_url}, CloudWatch bridge at {bridge_url}")

    # Until enforcement is on, any key works; the admin created here keeps
    # working after (it may do everything).
    bootstrap = ("AKIAIOSFODNN7EXAMPLE", "bootstrap")
    iam = client(boto3, "iam", moto_url, bootstrap)
    admin = create_identity(iam, "admin", ["*"])
    credentials[admin[0]] = (admin[0], admin[1], None)
    c = lambda service: client(boto3, service, moto_url, admin)  # noqa: E731

    template = load_template()
    step("creating the stack in moto's CloudFormation (left out: " + ", ".join(f"{k}: {v}" for k, v in LEFT_OUT.items()) + ")")
    outputs, resources = create_stack(c("cloudformation"), template)
    desired = work / "desired-state"
    if desired.exists():
        shutil.rmtree(desired)
    subnet_a, subnet_b = fill_desired_state(c("ec2"), outputs, desired)

    role = resources["BallastTaskRole"]
    iam = c("iam")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    if names != ["ballast"]:
        fail(f"expected the task role to hold one inline policy 'ballast', found {names}")
    document = iam.get_role_policy(RoleName=role, PolicyName="ballast")["PolicyDocument"]
    if isinstance(document, str):
        # moto's CloudFormation stores the document as Python's repr.
        document = json.loads(document) if document.lstrip().startswith('{"') else ast.literal_eval(document)
    lint_policy(document)
    actions = actions_of(document)
    step(f"the task role allows {len(actions)} actions: {', '.join(actions)}")
    key = create_identity(iam, "ballast", actions)
    credentials[key[0]] = (key[0], key[1], None)
    control = create_identity(iam, "ballast-without-listtasks", [a for a in actions if a != "ecs:ListTasks"])
    credentials[control[0]] = (control[0], control[1], None)

    # CloudFormation creates a service without DesiredCount at 1 task;
    # moto's at 0.
    c("ecs").update_service(cluster=CLUSTER, service=APP_SERVICE, desiredCount=1)
    ecs = Ecs(c("ecs"), c("autoscaling"))
    ecs.register_instances()
    for service in (APP_SERVICE, "ballast"):
        ecs.schedule(service)

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    step("IAM enforcement on")

    # The negative control: without ListTasks, ballast cannot read tasks.
    code, out = ballast(opts.ballast, ["plan"], desired, ballast_env(moto_url, bridge_url, control, work / "aws"))
    if not any("ListTasks" in line for line in trouble(out)):
        fail(f"the negative control was not denied (is enforcement on?); ballast plan exited {code}:\n{out}")
    step("negative control: without ecs:ListTasks ballast is denied, as it should be")

    env = ballast_env(moto_url, bridge_url, key, work / "aws")
    converged = False
    for n in range(1, MAX_PASSES + 1):
        code, out = ballast(opts.ballast, ["apply", "--once"], desired, env)
        if trouble(out):
            fail(f"pass {n}: ballast could not make every call with the task role's actions:\n{out}")
        if code not in (0, 2):
            fail(f"pass {n}: ballast apply --once exited {code}:\n{out}")
        ecs.register_instances()
        for service in (APP_SERVICE, "ballast"):
            ecs.schedule(service)
        code, out = ballast(opts.ballast, ["plan"], desired, env)
        if trouble(out):
            fail(f"pass {n}: ballast plan could not make every call with the task role's actions:\n{out}")
        if code == 0:
            converged = True
            step(f"converged after {n} pass(es): ballast plan reports no changes")
            break
        if code != 2:
            fail(f"pass {n}: ballast plan exited {code}:\n{out}")
    if not converged:
        fail(f"not converged after {MAX_PASSES} passes; the last plan:\n{out}")

    # The end state, read as the admin.
    problems = []
    svc = c("ecs").describe_services(cluster=CLUSTER, services=[APP_SERVICE])["services"][0]
    if svc["desiredCount"] != 2:
        problems.append(f"appService desired count {svc['desiredCount']}, expected 2 (the desired state's minimum)")
    tasks = ecs.tasks(APP_SERVICE)
    if len(tasks) != 2:
        problems.append(f"{len(tasks)} app tasks running, expected 2")
    instances = {ecs.instance_of(t) for t in tasks}
    elbv2 = c("elbv2")
    for logical in ("FrontendTargetGroup", "BackendTargetGroup"):
        arn = resources[logical]
        health = elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
        registered = {h["Target"]["Id"] for h in health}
        if registered != instances:
            problems.append(f"{logical} holds {sorted(registered)}, expected the tasks' instances {sorted(instances)}")
    cw = c("cloudwatch")
    for name in (f"ballast-{CLUSTER}-{APP_SERVICE}-cpu-high", f"ballast-{CLUSTER}-{APP_SERVICE}-cpu-low"):
        alarms = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        if not alarms:
            problems.append(f"alarm {name} missing")
            continue
        tags = cw.list_tags_for_resource(ResourceARN=alarms[0]["AlarmArn"])["Tags"]
        if {"Key": "managed-by", "Value": "ballast"} not in tags:
            problems.append(f"alarm {name} lacks the tag managed-by=ballast: {tags}")
    group = c("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["ecsAutoScalingGroup"])[
        "AutoScalingGroups"
    ][0]
    if group["DesiredCapacity"] < 2:
        problems.append(f"the group's desired capacity is {group['DesiredCapacity']}, expected at least 2")
    subnets = set(group["VPCZoneIdentifier"].split(","))
    if not subnets <= {subnet_a, subnet_b} or subnet_a not in subnets:
        problems.append(f"the group's subnets are {sorted(subnets)}, expected {subnet_a} (and maybe {subnet_b})")
    if problems:
        fail("the end state is not the desired one:\n  " + "\n  ".join(problems))
    step(
        f"end state: appService 2 tasks on {sorted(instances)}, both target groups hold them, both alarms "
        f"tagged, group capacity {group['DesiredCapacity']} ({time.monotonic() - started:.1f} s)"
    )
    print("dry-run: passed")


if __name__ == "__main__":
    main()
