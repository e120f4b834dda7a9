"""What moto leaves out of the AWS the tests and the deploy dry run talk to.

Installed in the process that runs moto (tests/emulator/moto_server.py for
the Rust tests, deploy/dry_run.py for the deploy dry run) before it serves:

- ECS GetTaskProtection and UpdateTaskProtection, with their documented
  shapes, so the adapter's calls are tested over the wire;
- the container-instance attributes the ECS agent registers (`ecs.subnet-id`,
  `ecs.vpc-id`);
- a service's one deployment COMPLETED (moto never completes it);
- Auto Scaling's termination lifecycle hooks: an instance held in
  Terminating:Wait, CompleteLifecycleAction and
  RecordLifecycleActionHeartbeat with their documented shapes.
"""


def _install_task_protection() -> None:
    """Answer ECS GetTaskProtection and UpdateTaskProtection, which moto lacks.

    The documented request and response shapes
    (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_GetTaskProtection.html,
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateTaskProtection.html):
    `protectedTasks[]` with `taskArn`, `protectionEnabled`, `expirationDate`;
    `failures[]` with `arn` and `reason` (`MISSING` for an unknown task,
    `TASK_NOT_VALID` for one that is stopping or stopped). Protection lives
    on moto's task object and expires like ECS's (1 to 2,880 minutes,
    default 120). The behaviour that protection has on scale-in is the
    simulated cloud's to model, not the emulator's.
    """
    import datetime as dt

    from moto.core.responses import ActionResult
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.responses import EC2ContainerServiceResponse

    def find(response, cluster, ids):
        backend = response.ecs_backend
        name = backend._get_cluster(cluster).name
        tasks = backend.tasks.get(name, {})
        found, failures = [], []
        for ident in ids:
            task = next((t for arn, t in tasks.items() if ident in (arn, arn.split("/")[-1])), None)
            if task is None:
                failures.append({"arn": ident, "reason": "MISSING"})
            else:
                found.append(task)
        return found, failures

    def described(task):
        until = getattr(task, "protection_expires", None)
        now = dt.datetime.now(dt.timezone.utc)
        if until is not None and until <= now:
            until = None
        out = {"taskArn": task.task_arn, "protectionEnabled": until is not None}
        if until is not None:
            out["expirationDate"] = until
        return out

    def get_task_protection(self):
        tasks, failures = find(self, self._get_param("cluster", "default"), self._get_param("tasks", []))
        return ActionResult({"protectedTasks": [described(t) for t in tasks], "failures": failures})

    def update_task_protection(self):
        enabled = bool(self._get_param("protectionEnabled"))
        minutes = self._get_param("expiresInMinutes")
        if minutes is None:
            minutes = 120
        if enabled and not 1 <= int(minutes) <= 2880:
            raise InvalidParameterException("expiresInMinutes must be between 1 and 2880.")
        tasks, failures = find(self, self._get_param("cluster", "default"), self._get_param("tasks", []))
        done = []
        for task in tasks:
            if task.desired_status != "RUNNING":
                failures.append({"arn": task.task_arn, "reason": "TASK_NOT_VALID"})
                continue
            now = dt.datetime.now(dt.timezone.utc)
            task.protection_expires = now + dt.timedelta(minutes=int(minutes)) if enabled else None
            done.append(described(task))
        return ActionResult({"protectedTasks": done, "failures": failures})

    EC2ContainerServiceResponse.get_task_protection = get_task_protection
    EC2ContainerServiceResponse.update_task_protection = update_task_protection




def _agent_attributes() -> None:
    """Container instances carry `ecs.subnet-id` and `ecs.vpc-id`, as the
    ECS agent registers them for an instance launched in a VPC (moto sets
    only ami-id, availability-zone, instance-type and os-type). ballast
    reads an instance's subnet from them."""
    from moto.ecs import models

    init = models.ContainerInstance.__init__

    def with_vpc_attributes(self, ec2_instance_id, account_id, region_name, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, ec2_instance_id, account_id, region_name, *args, **kwargs)
        from moto.ec2.models import ec2_backends

        instance = ec2_backends[account_id][region_name].get_instance(ec2_instance_id)
        if getattr(instance, "subnet_id", None):
            self.attributes["ecs.subnet-id"] = instance.subnet_id
        if getattr(instance, "vpc_id", None):
            self.attributes["ecs.vpc-id"] = instance.vpc_id

    models.ContainerInstance.__init__ = with_vpc_attributes  # type: ignore[method-assign]




def _steady_deployments() -> None:
    """A service's deployment is COMPLETED, not IN_PROGRESS forever: moto
    rolls out nothing (the tests play ECS's scheduler and start the tasks
    themselves) and marks a deployment complete only when the environment
    variable MOTO_ECS_SERVICE_RUNNING covers the desired count, which would
    also fake every service's runningCount. ballast holds capacity scale-in
    while a service deploys, so a deployment that never ends would hold it
    for good."""
    from moto.ecs import models

    init = models.Service.__init__

    def completed(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        init(self, *args, **kwargs)
        for deployment in self.deployments:
            deployment["rolloutState"] = "COMPLETED"
            deployment["rolloutStateReason"] = f"ECS deployment {deployment['id']} completed."

    models.Service.__init__ = completed  # type: ignore[method-assign]


def _termination_hooks() -> None:
    """Termination lifecycle hooks hold an instance in `Terminating:Wait`.

    moto stores hooks (PutLifecycleHook, DescribeLifecycleHooks) but
    terminates at once and lacks CompleteLifecycleAction and
    RecordLifecycleActionHeartbeat. With a hook for
    `autoscaling:EC2_INSTANCE_TERMINATING` on the group,
    TerminateInstanceInAutoScalingGroup leaves the instance in
    `Terminating:Wait`
    (https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html);
    CompleteLifecycleAction
    (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_CompleteLifecycleAction.html:
    AutoScalingGroupName, LifecycleHookName, InstanceId or
    LifecycleActionToken, LifecycleActionResult CONTINUE or ABANDON; an empty
    result) terminates it then, and RecordLifecycleActionHeartbeat
    (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RecordLifecycleActionHeartbeat.html:
    the same names; an empty result) accepts a heartbeat. Either fails with
    ValidationError for an instance with no action waiting, as AWS does. The
    heartbeat timeout itself is the simulated cloud's to model.
    """
    from moto.autoscaling.exceptions import ValidationError
    from moto.autoscaling.models import TerminateInstanceActivity
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult, EmptyResult

    def state_of(backend, instance_id):
        return next(
            (s for g in backend.autoscaling_groups.values() for s in g.instance_states if s.instance.id == instance_id),
            None,
        )

    def has_termination_hook(backend, group):
        return any(
            h.auto_scaling_group_name == group and h.lifecycle_transition == "autoscaling:EC2_INSTANCE_TERMINATING"
            for h in backend.lifecycle_hooks.values()
        )

    terminate = AutoScalingResponse.terminate_instance_in_auto_scaling_group

    def terminate_through_hooks(self):
        backend = self.autoscaling_backend
        instance_id = self._get_param("InstanceId")
        state = state_of(backend, instance_id)
        if state is None or not has_termination_hook(backend, state.auto_scaling_group_name):
            return terminate(self)
        if state.lifecycle_state != "Terminating:Wait":
            group = state.auto_scaling_group
            original = group.desired_capacity
            decrement = self._get_bool_param("ShouldDecrementDesiredCapacity", False)
            state.lifecycle_state = "Terminating:Wait"
            state.decrement_on_completion = decrement
            return ActionResult({"Activity": TerminateInstanceActivity(state.instance, original)})
        return ActionResult({"Activity": TerminateInstanceActivity(state.instance, state.auto_scaling_group.desired_capacity)})

    def waiting(self, operation):
        backend = self.autoscaling_backend
        group = self._get_param("AutoScalingGroupName")
        instance_id = self._get_param("InstanceId")
        if self._get_param("LifecycleHookName") is None:
            raise ValidationError(f"{operation}: LifecycleHookName is required")
        state = state_of(backend, instance_id)
        if state is None or state.auto_scaling_group_name != group or state.lifecycle_state != "Terminating:Wait":
            raise ValidationError(f"No active Lifecycle Action found with instance ID {instance_id}")
        return backend, state

    def complete_lifecycle_action(self):
        backend, state = waiting(self, "CompleteLifecycleAction")
        if self._get_param("LifecycleActionResult") not in ("CONTINUE", "ABANDON"):
            raise ValidationError("LifecycleActionResult must be CONTINUE or ABANDON")
        backend.terminate_instance(state.instance.id, getattr(state, "decrement_on_completion", False))
        return EmptyResult()

    def record_lifecycle_action_heartbeat(self):
        waiting(self, "RecordLifecycleActionHeartbeat")
        return EmptyResult()

    AutoScalingResponse.terminate_instance_in_auto_scaling_group = terminate_through_hooks
    AutoScalingResponse.complete_lifecycle_action = complete_lifecycle_action
    AutoScalingResponse.record_lifecycle_action_heartbeat = record_lifecycle_action_heartbeat


def install() -> None:
    _install_task_protection()
    _agent_attributes()
    _steady_deployments()
    _termination_hooks()
