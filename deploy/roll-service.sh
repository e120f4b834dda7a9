#!/usr/bin/env bash
# Roll one ECS service onto an image: register a revision of the task
# definition it runs now with only that container's image changed, point
# the service at it and wait until the service is stable.
#
#   deploy/roll-service.sh CLUSTER SERVICE CONTAINER IMAGE
#
# Starting from the running revision keeps what the stack set (memory,
# CPU, roles, logging, health check); only the image moves. Needs the AWS
# CLI and jq (both on GitHub's ubuntu runners).
set -euo pipefail

[ "$#" -eq 4 ] || {
  echo "usage: $0 CLUSTER SERVICE CONTAINER IMAGE" >&2
  exit 2
}
cluster=$1 service=$2 container=$3 image=$4

current=$(aws ecs describe-services --cluster "$cluster" --services "$service" \
  --query 'services[0].taskDefinition' --output text)
if [ -z "$current" ] || [ "$current" = None ]; then
  echo "error: service $service not found in cluster $cluster (create the services first: deploy/README.md step 4)" >&2
  exit 1
fi

# describe-task-definition returns read-only fields that
# register-task-definition refuses; keep only what it accepts.
definition=$(aws ecs describe-task-definition --task-definition "$current" --query taskDefinition --output json \
  | jq --arg c "$container" --arg i "$image" '
      del(.taskDefinitionArn, .revision, .status, .requiresAttributes, .compatibilities,
          .registeredAt, .registeredBy, .deregisteredAt)
      | if any(.containerDefinitions[]; .name == $c) then . else error("no container \($c)") end
      | .containerDefinitions |= map(if .name == $c then .image = $i else . end)')

revision=$(aws ecs register-task-definition --cli-input-json "$definition" \
  --query taskDefinition.taskDefinitionArn --output text)
echo "$service: $current -> $revision ($image)"
aws ecs update-service --cluster "$cluster" --service "$service" --task-definition "$revision" \
  --query 'service.deployments[0].id' --output text
aws ecs wait services-stable --cluster "$cluster" --services "$service"
echo "$service: stable on $revision"
