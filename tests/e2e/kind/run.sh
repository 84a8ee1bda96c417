#!/usr/bin/env bash
# The e2e tier against a real Kubernetes cluster: kind + a pinned Argo Workflows release (emissary
# executor) + an artifact repository, with Airflow's connections pointed at it.
#
#   tests/e2e/kind/run.sh [extra pytest arguments]
#
# Needs: a running Docker engine, kind (>= 0.20), kubectl, and the virtualenv (./dev setup).
# Environment:
#   KIND_CLUSTER_NAME    cluster name (default airflow-argo-eci-e2e); an existing one is reused
#   KEEP_CLUSTER=1       leave the cluster running afterwards (default: delete the one this script created)
#   ARTIFACT_REPOSITORY  minio (default: a MinIO in the cluster, S3 artifact repository) or oss (Alibaba Cloud
#                        OSS: set OSS_ENDPOINT, OSS_REGION, OSS_BUCKET, OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET;
#                        Argo stores artifacts there and Airflow's oss_default reads them)
# Steps: create the cluster, install Argo Workflows, configure the artifact repository and the executor's
# RBAC, prove the executor is emissary and artifacts land, write the Airflow connections
# (docker/argo_connections.py, as the compose profile `cluster` does), then run
#   1. the provider tests marked real_cluster (KUBECONFIG points at kind), and
#   2. the e2e tier (tests/e2e) with AIRFLOW_ARGO_ECI_STACK_CONNECTIONS naming the connections file, so
#      `stack up` wires Airflow to kind instead of the local cluster.
set -euo pipefail

# --- pinned versions ------------------------------------------------------------------------------
ARGO_VERSION=v3.6.15                                   # Argo Workflows release (emissary is its only executor)
KIND_NODE_IMAGE=kindest/node:v1.31.0                   # Kubernetes 1.31
MINIO_IMAGE=minio/minio:RELEASE.2024-01-16T16-07-38Z
PROBE_IMAGE=busybox:1.36

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
CLUSTER=${KIND_CLUSTER_NAME:-airflow-argo-eci-e2e}
ARTIFACTS=${ARTIFACT_REPOSITORY:-minio}
PY="$ROOT/.venv/bin/python"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/kind-e2e.XXXXXX")
KCFG="$WORK/kubeconfig"
CREATED=0

log() { printf '\033[1m[kind-e2e]\033[0m %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 2; }
kc() { kubectl --kubeconfig "$KCFG" "$@"; }

cleanup() {
  if [ "$CREATED" = 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    log "deleting kind cluster $CLUSTER (KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- prerequisites --------------------------------------------------------------------------------
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (needs: Docker engine, kind >= 0.20, kubectl)"
done
docker info >/dev/null 2>&1 || die "no Docker engine reachable (docker info failed): start Docker first"
[ -x "$PY" ] || die "$PY missing: run ./dev setup first"
case "$ARTIFACTS" in
  minio) ;;
  oss)
    for var in OSS_ENDPOINT OSS_REGION OSS_BUCKET OSS_ACCESS_KEY_ID OSS_ACCESS_KEY_SECRET; do
      [ -n "${!var:-}" ] || die "ARTIFACT_REPOSITORY=oss needs $var"
    done ;;
  *) die "ARTIFACT_REPOSITORY must be minio or oss, got '$ARTIFACTS'" ;;
esac

# --- cluster --------------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  log "reusing kind cluster $CLUSTER"
  kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KCFG" >/dev/null
else
  log "creating kind cluster $CLUSTER ($KIND_NODE_IMAGE)"
  kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --kubeconfig "$KCFG" --wait 180s
  CREATED=1
fi
chmod 600 "$KCFG"

# --- Argo Workflows -------------------------------------------------------------------------------
log "installing Argo Workflows $ARGO_VERSION"
kc create namespace argo --dry-run=client -o yaml | kc apply -f - >/dev/null
kc apply -n argo --server-side --force-conflicts \
  -f "https://github.com/argoproj/argo-workflows/releases/download/$ARGO_VERSION/install.yaml" >/dev/null

# What the emissary executor of the workflow pods (service account `default`) needs to report results.
kc apply -n argo -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: executor}
rules:
  - apiGroups: [argoproj.io]
    resources: [workflowtaskresults]
    verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: executor-default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: executor}
subjects: [{kind: ServiceAccount, name: default, namespace: argo}]
EOF

# --- artifact repository --------------------------------------------------------------------------
if [ "$ARTIFACTS" = minio ]; then
  log "artifact repository: MinIO ($MINIO_IMAGE), bucket argo-artifacts"
  kc apply -n argo -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata: {name: minio-credentials}
stringData: {accesskey: admin, secretkey: password}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: minio}
spec:
  selector: {matchLabels: {app: minio}}
  template:
    metadata: {labels: {app: minio}}
    spec:
      containers:
        - name: main
          image: $MINIO_IMAGE
          command: [sh, -c, "mkdir -p /data/argo-artifacts && exec minio server /data"]
          env:
            - {name: MINIO_ROOT_USER, valueFrom: {secretKeyRef: {name: minio-credentials, key: accesskey}}}
            - {name: MINIO_ROOT_PASSWORD, valueFrom: {secretKeyRef: {name: minio-credentials, key: secretkey}}}
          ports: [{containerPort: 9000}]
          readinessProbe: {httpGet: {path: /minio/health/ready, port: 9000}}
---
apiVersion: v1
kind: Service
metadata: {name: minio}
spec:
  selector: {app: minio}
  ports: [{port: 9000, targetPort: 9000}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: artifact-repositories
  annotations: {workflows.argoproj.io/default-artifact-repository: default-v1}
data:
  default-v1: |
    archiveLogs: true
    s3:
      bucket: argo-artifacts
      endpoint: minio:9000
      insecure: true
      keyFormat: "{{workflow.name}}/{{pod.name}}"
      accessKeySecret: {name: minio-credentials, key: accesskey}
      secretKeySecret: {name: minio-credentials, key: secretkey}
EOF
  kc -n argo rollout status deploy/minio --timeout=180s >/dev/null
else
  log "artifact repository: OSS bucket $OSS_BUCKET at $OSS_ENDPOINT"
  kc -n argo create secret generic argo-oss-credentials --dry-run=client -o yaml \
    --from-literal=accessKey="$OSS_ACCESS_KEY_ID" --from-literal=secretKey="$OSS_ACCESS_KEY_SECRET" \
    | kc apply -f - >/dev/null
  kc apply -n argo -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: artifact-repositories
  annotations: {workflows.argoproj.io/default-artifact-repository: default-v1}
data:
  default-v1: |
    archiveLogs: true
    oss:
      endpoint: $OSS_ENDPOINT
      bucket: $OSS_BUCKET
      keyFormat: "{{workflow.name}}/{{pod.name}}"
      accessKeySecret: {name: argo-oss-credentials, key: accessKey}
      secretKeySecret: {name: argo-oss-credentials, key: secretKey}
EOF
fi
kc -n argo rollout status deploy/workflow-controller --timeout=300s >/dev/null

# --- prove: emissary executor, artifacts stored ---------------------------------------------------
log "probe workflow: emissary executor and an output artifact"
probe=$(kc -n argo create -o name -f - <<EOF
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: kind-probe-}
spec:
  entrypoint: main
  templates:
    - name: main
      container:
        image: $PROBE_IMAGE
        command: [sh, -c, "echo probe > /tmp/out.txt"]
      outputs:
        artifacts: [{name: out, path: /tmp/out.txt}]
EOF
)
probe=${probe#*/}
kc -n argo wait "workflow/$probe" --for=jsonpath='{.status.phase}'=Succeeded --timeout=300s >/dev/null \
  || die "probe workflow $probe did not succeed: $(kc -n argo get "workflow/$probe" -o jsonpath='{.status.message}')"
command=$(kc -n argo get pods -l "workflows.argoproj.io/workflow=$probe" \
  -o jsonpath='{.items[0].spec.containers[?(@.name=="main")].command}')
case "$command" in
  *argoexec*emissary*) log "executor: emissary ($command)" ;;
  *) die "the probe's main container does not run under the emissary executor: $command" ;;
esac
stored=$(kc -n argo get "workflow/$probe" -o json | "$PY" -c '
import json, sys
nodes = json.load(sys.stdin)["status"]["nodes"].values()
arts = [a for n in nodes for a in (n.get("outputs") or {}).get("artifacts", []) if a.get("name") == "out"]
print(any((a.get("s3") or a.get("oss") or {}).get("key") for a in arts))')
[ "$stored" = True ] || die "the probe's output artifact was not stored in the artifact repository"
log "artifact stored ($ARTIFACTS)"

# --- Airflow connections and the tiers ------------------------------------------------------------
mkdir -p "$WORK/airflow"
"$PY" "$ROOT/docker/argo_connections.py" from-kubeconfig "$KCFG" "$WORK/airflow/connections.json" \
  --namespace argo
export KUBECONFIG="$WORK/airflow/kubeconfig"
export AIRFLOW_ARGO_ECI_STACK_CONNECTIONS="$WORK/airflow/connections.json"
export AIRFLOW_CONN_ARGO_DEFAULT
AIRFLOW_CONN_ARGO_DEFAULT=$("$PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["argo_default"]))' \
  "$AIRFLOW_ARGO_ECI_STACK_CONNECTIONS")

cd "$ROOT"
log "tier 1: provider tests marked real_cluster against kind"
"$PY" -m pytest -q -p no:cacheprovider -m real_cluster tests --ignore=tests/e2e "$@"

if ! grep -rq AIRFLOW_ARGO_ECI_STACK_CONNECTIONS "$ROOT/airflow_argo_eci/stack"; then
  die "tier 2 not run: \`stack up\` does not read AIRFLOW_ARGO_ECI_STACK_CONNECTIONS yet, so tests/e2e would \
run against the local cluster, not kind"
fi
log "tier 2: tests/e2e through a real Airflow stack wired to kind"
"$PY" -m pytest -q -p no:cacheprovider tests/e2e --ignore=tests/e2e/kind "$@"
log "done"
