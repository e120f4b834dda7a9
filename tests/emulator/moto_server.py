"""`moto_server` that exits when the process that started it goes away.

The Rust test support starts this with a pipe on stdin and never writes to
it. When the test process ends, however it ends (normal exit, panic,
SIGKILL), the kernel closes the pipe, the read below returns EOF and the
server exits: no emulator outlives a test run. Arguments are moto_server's
own (`-H 127.0.0.1 -p PORT`).
"""

import os
import sys
import threading


def _exit_when_parent_goes() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


threading.Thread(target=_exit_when_parent_goes, daemon=True).start()


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


_agent_attributes()


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


_steady_deployments()

from moto.server import main  # noqa: E402  (after the watchdog starts)

main(sys.argv[1:])
