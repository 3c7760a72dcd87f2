#!/usr/bin/env bash
# Checks the deployment files offline: the Helm chart (helm/chatbox),
# docker-compose.yml and the Dockerfile. No Docker engine, no helm binary:
# Helm's own library from PyPI (helm-python-sdk) lints and renders the chart,
# kubernetes-validate checks the rendered manifests against the Kubernetes
# OpenAPI schemas, check-jsonschema the values against values.schema.json,
# and Debian's docker-compose v1 the compose file.
#
#   bash scripts/checks/deploy.sh          (from anywhere; works on the repo root)
#
# Tools are cached in ~/.cache/chatbox/deploy-venv (first run: a ~75 MB wheel).
# One line per check; exits non-zero when any check fails.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
CHART=helm/chatbox
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/chatbox"
VENV="$CACHE/deploy-venv"
PY_PKGS=(helm-python-sdk==0.2.2 kubernetes-validate yamllint check-jsonschema)
export K8S_VERSION="${K8S_VERSION:-1.30.0}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

say() { printf '%s\n' "$*"; }

# --- tools ---------------------------------------------------------------
ensure_tools() {
  if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv >/dev/null
  fi
  local stamp="$VENV/.chatbox-deploy-$(printf '%s ' "${PY_PKGS[@]}" | sha256sum | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    say "setup: installing ${PY_PKGS[*]} into $VENV"
    mkdir -p "$CACHE"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"
    touch "$stamp"
  fi
  if ! command -v docker-compose >/dev/null; then
    say "setup: installing docker-compose (Debian)"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  fi
}
ensure_tools
PY="$VENV/bin/python"

# --- checks --------------------------------------------------------------
FAILED=()
PASSED=0
# run NAME COMMAND...: runs a check, keeps its output, prints one line.
run() {
  local name=$1; shift
  local log="$WORK/$(echo "$name" | tr -c 'A-Za-z0-9' '_').log"
  local start=$SECONDS
  if "$@" >"$log" 2>&1; then
    PASSED=$((PASSED + 1))
    printf 'ok    %-34s %3ss  %s\n' "$name" "$((SECONDS - start))" "$(tail -n1 "$log")"
  else
    FAILED+=("$name")
    printf 'FAIL  %-34s %3ss\n' "$name" "$((SECONDS - start))"
    sed 's/^/      | /' "$log" | tail -n 40
  fi
}

check_yamllint() {
  local files=(docker-compose.yml "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART/ci/production-values.yaml" deploy/prometheus.yml)
  "$VENV/bin/yamllint" -s -d '{extends: relaxed, rules: {line-length: {max: 160}}}' "${files[@]}"
  echo "${#files[@]} files (templates excluded: Go templates are not YAML)"
}

check_alerts_copy() {
  if [ ! -e prometheus/alerts.yml ]; then
    echo "prometheus/alerts.yml absent; chart copy used as is"; return 0
  fi
  if ! cmp -s prometheus/alerts.yml "$CHART/files/alerts.yml"; then
    diff -u prometheus/alerts.yml "$CHART/files/alerts.yml" | head -n 20 || true
    echo "helm/chatbox/files/alerts.yml differs from prometheus/alerts.yml;"
    echo "fix: cp prometheus/alerts.yml helm/chatbox/files/alerts.yml"
    return 1
  fi
  echo "files/alerts.yml == prometheus/alerts.yml"
}

# values.yaml alone, and ci/production-values.yaml merged over it the way
# Helm does (maps deep-merged, null deletes a key).
check_values_schema() {
  "$PY" - "$WORK/production-merged.yaml" <<'EOF'
import sys, yaml
def merge(base, over):
    for k, v in over.items():
        if v is None: base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict): merge(base[k], v)
        else: base[k] = v
    return base
merged = merge(yaml.safe_load(open("helm/chatbox/values.yaml")), yaml.safe_load(open("helm/chatbox/ci/production-values.yaml")))
yaml.safe_dump(merged, open(sys.argv[1], "w"))
EOF
  "$VENV/bin/check-jsonschema" --schemafile "$CHART/values.schema.json" \
    "$CHART/values.yaml" "$WORK/production-merged.yaml"
}

# Every configuration key of docs/CONFIGURATION.md can be set through the
# chart: values.schema.json's config tree (rendered into the TOML file) must
# have it.
check_config_keys() {
  "$PY" - <<'EOF'
import json, re, sys
doc = open("docs/CONFIGURATION.md").read()
keys = re.findall(r"^\| `((?:app|chatbox)\.[a-z0-9_.]+)` \|", doc, re.M)
schema = json.load(open("helm/chatbox/values.schema.json"))["properties"]["config"]
missing = []
for key in keys:
    node = schema
    for part in key.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            missing.append(key); break
if missing:
    print("not settable through values.config (regenerate: python3 helm/chatbox/ci/gen-values-schema.py):")
    print("\n".join("  " + k for k in missing)); sys.exit(1)
print(f"{len(keys)} keys of docs/CONFIGURATION.md settable via values.config")
EOF
}

check_lint() {
  "$PY" - "$@" <<'EOF'
import sys, yaml, helm_python as helm
for values_file in [None, "helm/chatbox/ci/production-values.yaml"]:
    values = yaml.safe_load(open(values_file)) if values_file else None
    report = helm.lint("helm/chatbox", values=values, strict=True, namespace="chat")
    bad = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    errors = report.get("errors") or []
    for m in bad:
        print(f"{values_file or 'defaults'}: [{m.get('severity')}] {m.get('path')}: {m.get('error')}")
    for e in errors:
        print(f"{values_file or 'defaults'}: {e}")
    if bad or errors:
        sys.exit(1)
print("helm lint --strict: defaults and ci/production-values.yaml clean")
EOF
}

# Renders the chart into $WORK/<case>/ (one file per manifest); CRDs of the
# Prometheus operator go to $WORK/<case>-crd/.
render() {
  local case=$1 values=${2:-}
  "$PY" - "$WORK" "$case" "$values" <<'EOF'
import os, sys, yaml, helm_python as helm
work, case, values_file = sys.argv[1], sys.argv[2], sys.argv[3]
values = yaml.safe_load(open(values_file)) if values_file else None
with helm.Chart.load("helm/chatbox") as chart:
    docs = chart.render(values, name="chatbox", namespace="chat", is_install=True)
out, crd = os.path.join(work, case), os.path.join(work, case + "-crd")
os.makedirs(out); os.makedirs(crd)
n = 0
kinds = {}
for path, text in sorted(docs.items()):
    if path.endswith("NOTES.txt") or not text.strip():
        continue
    for i, doc in enumerate(yaml.safe_load_all(text)):
        if not doc:
            continue
        n += 1
        kinds[doc["kind"]] = kinds.get(doc["kind"], 0) + 1
        target = crd if doc["apiVersion"].startswith("monitoring.coreos.com/") else out
        name = f"{n:03d}-{doc['kind']}-{doc['metadata']['name']}.yaml"
        with open(os.path.join(target, name), "w") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
print(f"{n} manifests: " + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
EOF
}

# kubernetes-validate --strict on every built-in manifest; the CRDs
# (ServiceMonitor, PrometheusRule) are skipped there and shape-checked here.
validate() {
  local case=$1
  local files=("$WORK/$case"/*.yaml)
  "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "${files[@]}"
  "$PY" - "$WORK/$case" "$WORK/$case-crd" <<'EOF'
import glob, os, sys, yaml
base, crd = sys.argv[1], sys.argv[2]
docs = [yaml.safe_load(open(f)) for f in sorted(glob.glob(base + "/*.yaml"))]
crds = [yaml.safe_load(open(f)) for f in sorted(glob.glob(crd + "/*.yaml"))]
errors = []
def need(cond, msg):
    if not cond: errors.append(msg)
by_kind = {}
for d in docs: by_kind.setdefault(d["kind"], []).append(d)
drain = None
for dep in by_kind.get("Deployment", []):
    name = dep["metadata"]["name"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c.get("env", [])}
    need(env.get("POD_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name", f"{name}: POD_ID from the Downward API")
    t = env.get("CHATBOX_APP_SHUTDOWN_TIMEOUT", {}).get("value", "")
    need(t.endswith("s") and t[:-1].isdigit(), f"{name}: CHATBOX_APP_SHUTDOWN_TIMEOUT in seconds")
    drain = int(t[:-1]) if t[:-1].isdigit() else 0
    pre = c.get("lifecycle", {}).get("preStop", {})
    sleep = pre.get("sleep", {}).get("seconds") or int((pre.get("exec", {}).get("command") or ["", "0"])[-1])
    need(sleep > 0, f"{name}: preStop sleep")
    need(pod["terminationGracePeriodSeconds"] > drain + sleep, f"{name}: terminationGracePeriodSeconds > drain + preStop")
    need(c["livenessProbe"]["httpGet"]["path"] == "/chat/healthz", f"{name}: liveness /chat/healthz")
    need(c["readinessProbe"]["httpGet"]["path"] == "/chat/readyz", f"{name}: readiness /chat/readyz")
    sc, psc = c["securityContext"], pod["securityContext"]
    need(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False and sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: container securityContext")
    need(psc.get("runAsNonRoot") is True and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{name}: pod securityContext")
    need(any(m["mountPath"] == "/tmp" for m in c["volumeMounts"]), f"{name}: /tmp emptyDir")
    need(pod.get("topologySpreadConstraints"), f"{name}: topologySpreadConstraints")
    need(c.get("resources", {}).get("requests"), f"{name}: resource requests")
for svc in by_kind.get("Service", []):
    need(svc["spec"].get("sessionAffinity", "None") == "None", f"{svc['metadata']['name']}: no session affinity")
for ing in by_kind.get("Ingress", []):
    a = ing["metadata"].get("annotations", {})
    need(not any("affinity" in k or "sticky" in k for k in a), "ingress: no affinity annotations")
    need(a.get("nginx.ingress.kubernetes.io/proxy-read-timeout") == "3600", "ingress: proxy-read-timeout 3600")
# CRDs: not in kubernetes-validate's schemas; their required shape here.
jobs = set()
for d in crds:
    name = f"{d['kind']}/{d['metadata']['name']}"
    need(d["apiVersion"] == "monitoring.coreos.com/v1", f"{name}: apiVersion")
    need(d["metadata"].get("namespace"), f"{name}: namespace")
    if d["kind"] == "ServiceMonitor":
        s = d["spec"]
        need(s.get("selector", {}).get("matchLabels"), f"{name}: selector")
        need(s.get("endpoints") and all(e.get("port") for e in s["endpoints"]), f"{name}: endpoints with port names")
        jobs.add(s["selector"]["matchLabels"].get(s.get("jobLabel")))
        svc = [v for v in by_kind.get("Service", []) if all(v["metadata"]["labels"].get(k) == x for k, x in s["selector"]["matchLabels"].items())]
        need(len(svc) == 1, f"{name}: selects exactly one Service")
        for v in svc:
            ports = {p["name"] for p in v["spec"]["ports"]}
            need(all(e["port"] in ports for e in s["endpoints"]), f"{name}: endpoint port names exist on the Service")
    elif d["kind"] == "PrometheusRule":
        groups = d["spec"].get("groups")
        need(isinstance(groups, list) and groups, f"{name}: groups")
        for g in groups or []:
            need(g.get("name") and isinstance(g.get("rules"), list), f"{name}: group {g.get('name')}")
            for r in g.get("rules", []):
                need(("alert" in r or "record" in r) and isinstance(r.get("expr"), (str, int)), f"{name}: rule {r.get('alert') or r.get('record')}")
    else:
        errors.append(f"{name}: unexpected kind")
if any(d["kind"] == "ServiceMonitor" for d in crds):
    need(jobs == {"chatbox-gateway", "chatbox-worker"}, f"ServiceMonitor jobs {sorted(map(str, jobs))} != chatbox-gateway, chatbox-worker")
if errors:
    print("\n".join(errors)); sys.exit(1)
print(f"{len(docs)} manifests valid for Kubernetes {os.environ.get('K8S_VERSION', '')}".rstrip() + f", {len(crds)} CRs shape-checked")
EOF
}

check_compose() {
  docker-compose -f docker-compose.yml config -q
  "$PY" - <<'EOF'
import sys, yaml
c = yaml.safe_load(open("docker-compose.yml"))
s = c["services"]
errors = []
for name in ("redis", "nats", "mongo", "minio", "minio-setup", "mailpit", "prometheus", "grafana", "lb", "mock-llm",
             "gateway-1", "gateway-2", "worker-1", "worker-2"):
    if name not in s: errors.append(f"service {name} missing")
if "-js" not in s.get("nats", {}).get("command", []): errors.append("nats without JetStream (-js)")
for name, svc in s.items():
    if name != "minio-setup" and "healthcheck" not in svc: errors.append(f"{name}: no healthcheck")
conf = "\n".join(l.split("#", 1)[0] for l in open("deploy/nginx.conf"))
for needle in ("proxy_set_header Upgrade", "proxy_set_header Connection", "proxy_read_timeout 3600s"):
    if needle not in conf: errors.append(f"deploy/nginx.conf: {needle} missing")
if "ip_hash" in conf or "sticky" in conf: errors.append("deploy/nginx.conf: no affinity wanted")
prom = yaml.safe_load(open("deploy/prometheus.yml"))
jobs = {j["job_name"] for j in prom["scrape_configs"]}
if not {"chatbox-gateway", "chatbox-worker"} <= jobs: errors.append(f"deploy/prometheus.yml jobs: {sorted(jobs)}")
if errors: print("\n".join(errors)); sys.exit(1)
print(f"docker-compose config -q ok, {len(s)} services")
EOF
}

check_dockerfile() {
  "$PY" - <<'EOF'
import re, sys
lines = open("Dockerfile").read().replace("\\\n", " ").splitlines()
stages = [i for i, l in enumerate(lines) if re.match(r"\s*FROM\s", l, re.I)]
if not stages: print("no FROM"); sys.exit(1)
final = lines[stages[-1]:]
users = [l.split(None, 1)[1].strip() for l in final if re.match(r"\s*USER\s", l, re.I)]
if not users: print("final stage has no USER"); sys.exit(1)
user = users[-1].split(":")[0]
if user in ("root", "0", ""): print(f"final stage runs as {users[-1]}"); sys.exit(1)
entry = [l for l in final if re.match(r"\s*ENTRYPOINT\s", l, re.I)]
if not entry or "chatbox" not in entry[-1]: print("ENTRYPOINT chatbox missing"); sys.exit(1)
print(f"final stage '{lines[stages[-1]].split()[1]}' runs as USER {users[-1]}")
EOF
  grep -qE '^(/)?target/?$' .dockerignore || { echo ".dockerignore lacks target/"; return 1; }
}

say "deploy checks (chart $CHART, Kubernetes $K8S_VERSION schemas)"
run "yamllint"                    check_yamllint
run "chart alerts == prometheus"  check_alerts_copy
run "values.schema.json"          check_values_schema
run "config keys settable"        check_config_keys
run "helm lint --strict"          check_lint
run "render defaults"             render defaults
run "render production"           render production "$CHART/ci/production-values.yaml"
if [ -d "$WORK/defaults" ]; then
  run "kubernetes-validate defaults"   validate defaults
fi
if [ -d "$WORK/production" ]; then
  run "kubernetes-validate production" validate production
fi
run "docker-compose config"       check_compose
run "Dockerfile non-root"         check_dockerfile

if [ "${#FAILED[@]}" -gt 0 ]; then
  say "deploy: ${#FAILED[@]} failed (${FAILED[*]}), $PASSED passed"
  exit 1
fi
say "deploy: all $PASSED checks passed"
