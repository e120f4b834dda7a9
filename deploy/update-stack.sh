#!/usr/bin/env bash
# Update the stack without undoing what ballast and the deploy workflow
# changed outside CloudFormation:
#   - the Auto Scaling group's subnets: CloudFormation re-sends
#     VPCZoneIdentifier whenever it updates the group (a new ECS-optimized
#     AMI from SSM changes the launch template version, for one), which
#     would take away the subnet ballast added and terminate the instances
#     in it. The group's subnets now are passed as OnDemandSubnetInGroup.
#   - the images: a stack update that touches a task definition registers
#     a revision with the stack's image tag. The tags running now are
#     passed as AppImageTag and BallastImageTag.
# ballast is paused (desired count 0) while the stack updates, so that it
# does not change the subnets between this script reading them and
# CloudFormation writing them; it is set back to two tasks afterwards, also
# when the update fails.
#
#   deploy/update-stack.sh STACK_NAME [PARAMETER=VALUE ...]
#
# The PARAMETER=VALUE pairs are further parameter overrides (parameters
# left out keep their values). Needs the AWS CLI, signed in with the rights
# that created the stack, and AWS_REGION.
set -euo pipefail

[ "$#" -ge 1 ] || {
  echo "usage: $0 STACK_NAME [PARAMETER=VALUE ...]" >&2
  exit 2
}
stack=$1
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=appCluster group=ecsAutoScalingGroup

output() {
  aws cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}
# The image tag a service runs now, or nothing if the service is absent.
running_tag() {
  local td image
  td=$(aws ecs describe-services --cluster "$cluster" --services "$1" \
    --query "services[?status=='ACTIVE'].taskDefinition | [0]" --output text)
  [ -n "$td" ] && [ "$td" != None ] || return 0
  image=$(aws ecs describe-task-definition --task-definition "$td" \
    --query 'taskDefinition.containerDefinitions[0].image' --output text)
  echo "${image##*:}"
}

paused=false
resume() {
  if [ "$paused" = true ]; then
    echo "resuming ballast"
    aws ecs update-service --cluster "$cluster" --service ballast --desired-count 2 >/dev/null
  fi
}
trap resume EXIT

if [ -n "$(running_tag ballast)" ]; then
  echo "pausing ballast while the stack updates"
  aws ecs update-service --cluster "$cluster" --service ballast --desired-count 0 >/dev/null
  paused=true
  aws ecs wait services-stable --cluster "$cluster" --services ballast
fi

subnet_b=$(output PrivateSubnetB)
subnets=$(aws autoscaling describe-auto-scaling-groups --auto-scaling-group-names "$group" \
  --query 'AutoScalingGroups[0].VPCZoneIdentifier' --output text)
on_demand=false
if [[ ",$subnets," == *",$subnet_b,"* ]]; then on_demand=true; fi
overrides=("OnDemandSubnetInGroup=$on_demand")
app_tag=$(running_tag appService)
ballast_tag=$(running_tag ballast)
[ -z "$app_tag" ] || overrides+=("AppImageTag=$app_tag")
[ -z "$ballast_tag" ] || overrides+=("BallastImageTag=$ballast_tag")
echo "group subnets: $subnets; keeping: ${overrides[*]}"
overrides+=("$@")

aws cloudformation deploy \
  --stack-name "$stack" \
  --template-file "$root/deploy/cloudformation.yaml" \
  --capabilities CAPABILITY_IAM \
  --no-fail-on-empty-changeset \
  --parameter-overrides "${overrides[@]}"
