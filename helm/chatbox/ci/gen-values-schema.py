"""Regenerates ../values.schema.json; the config section comes from docs/CONFIGURATION.md.

Run from the repository root: python3 helm/chatbox/ci/gen-values-schema.py
"""
import json, re
doc = open('docs/CONFIGURATION.md').read()
leaf_any = ["string", "integer", "number", "boolean", "array"]
cfg = {"type": "object", "additionalProperties": False, "properties": {}}
keys = []
for m in re.finditer(r'^\| `((?:app|chatbox)\.[a-z0-9_.]+)` \| ([^|]*) \|(?: ([^|]*) \|)? (.*) \|$', doc, re.M):
    key, default, env, meaning = m.group(1), m.group(2).strip(), (m.group(3) or '').strip(), m.group(4).strip()
    keys.append(key)
    node = cfg
    parts = key.split('.')
    for p in parts[:-1]:
        node = node["properties"].setdefault(p, {"type": "object", "additionalProperties": False, "properties": {}})
    desc = re.sub(r'`', '', meaning)
    if len(desc) > 160: desc = desc[:157] + '...'
    leaf = {"description": f"{key} (default {re.sub('`','',default)}; env {re.sub('`','',env) or '-'}): {desc}"}
    if default in ("true", "false"): leaf["type"] = "boolean"
    elif re.fullmatch(r'`\d+`', default): leaf["type"] = ["integer", "string"]
    else: leaf["type"] = leaf_any
    node["properties"][parts[-1]] = leaf
def rows(header):
    sec = doc.split(header, 1)[1]
    out = {}
    for m in re.finditer(r'^\| `([a-z_A-Z]+)` \| ([^|]*) \| (.*) \|$', sec, re.M):
        if m.group(1) in out: break
        out[m.group(1)] = m.group(3)
        if m.end() + 2 < len(sec) and sec[m.end()+1:m.end()+2] != '|': break
    return out
prov_keys = rows("`[[chatbox.llm.providers]]` lists")
rule_keys = rows("`[[chatbox.notifications.rules]]`, one per event")
def table_schema(ks, required, exclude=()):
    props = {}
    for k, meaning in ks.items():
        if k in exclude: continue
        props[k] = {"description": re.sub('`', '', meaning)[:160]}
        if k in ("headers", "audio_output"): props[k]["type"] = "object"
        elif k in ("vision", "stream", "stream_usage", "enabled"): props[k]["type"] = "boolean"
        elif k in ("channels", "emails", "phones"): props[k]["type"] = "array"; props[k]["items"] = {"type": "string"}
        elif k in ("max_tokens",): props[k]["type"] = "integer"
        elif k in ("temperature",): props[k]["type"] = "number"
        else: props[k]["type"] = "string"
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}
provider = table_schema(prov_keys, ["id", "type", "endpoint"], exclude=("apiKey",))
provider["properties"]["type"]["enum"] = ["openai", "anthropic", "dify"]
rule = table_schema(rule_keys, ["event", "channels"])
rule["properties"]["event"]["enum"] = ["help_request", "llm_failure", "database_failure", "abnormal_traffic", "service_crash"]
rule["properties"]["channels"]["items"] = {"enum": ["email", "sms"]}
ch = cfg["properties"]["chatbox"]["properties"]
ch["llm"]["properties"]["providers"] = {"type": "array", "items": provider, "description": "[[chatbox.llm.providers]]; the API key goes into secrets.llmApiKeys, never here"}
ch["notifications"]["properties"]["rules"] = {"type": "array", "items": rule}
assert len(prov_keys) >= 18 and len(rule_keys) == 5, (prov_keys.keys(), rule_keys.keys())
print(len(keys), "keys;", list(prov_keys), list(rule_keys))

# ---- the chart's values ------------------------------------------------
S = lambda **kw: kw
obj = lambda props=None, extra=False, **kw: dict(type="object", additionalProperties=extra, **({"properties": props} if props else {}), **kw)
string = {"type": "string"}
boolean = {"type": "boolean"}
integer = {"type": "integer"}
anyobj = {"type": "object"}
arr = lambda items=None: {"type": "array", **({"items": items} if items else {})}
port = {"type": "integer", "minimum": 1, "maximum": 65535}
probe = {"type": ["object", "null"], "description": "a core/v1 Probe"}
nullable_int = {"type": ["integer", "null"], "minimum": 1, "maximum": 100}
int_or_pct = {"type": ["integer", "string", "null"], "pattern": "^[0-9]+%?$"}

def role(default_port, with_service_type):
    svc = {"port": port, "annotations": anyobj}
    if with_service_type:
        svc["type"] = {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]}
    return obj({
        "replicas": {"type": "integer", "minimum": 0},
        "port": port,
        "args": arr(string),
        "resources": anyobj,
        "autoscaling": obj({
            "enabled": boolean,
            "minReplicas": {"type": "integer", "minimum": 1},
            "maxReplicas": {"type": "integer", "minimum": 1},
            "targetCPUUtilizationPercentage": nullable_int,
            "targetMemoryUtilizationPercentage": nullable_int,
            "behavior": anyobj,
        }),
        "pdb": obj({"enabled": boolean, "maxUnavailable": int_or_pct, "minAvailable": int_or_pct}),
        "livenessProbe": probe, "readinessProbe": probe, "startupProbe": probe,
        "topologySpreadConstraints": arr(anyobj),
        "nodeSelector": {"type": "object", "additionalProperties": string},
        "tolerations": arr(anyobj),
        "affinity": anyobj,
        "priorityClassName": string,
        "podAnnotations": {"type": "object", "additionalProperties": string},
        "podLabels": {"type": "object", "additionalProperties": string},
        "extraEnv": arr(anyobj),
        "extraEnvFrom": arr(anyobj),
        "extraVolumes": arr(anyobj),
        "extraVolumeMounts": arr(anyobj),
        "service": obj(svc),
    }, required=["port", "autoscaling", "pdb", "resources", "service"])

def with_ops_port(schema):
    # The gateway's ops listener (app.ops_listen): /metrics apart from the public port; 0 turns it off.
    schema["properties"]["opsPort"] = {"type": "integer", "minimum": 0, "maximum": 65535,
                                       "description": "app.ops_listen port: /metrics and health apart from the public port; 0 serves /metrics on port"}
    return schema

egress_rule = obj({"ports": arr(port), "to": arr(anyobj)}, required=["ports"])
values = {
    "$schema": "https://json-schema.org/draft-07/schema#",
    "title": "chatbox Helm chart values",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "global": anyobj,
        "nameOverride": string, "fullnameOverride": string,
        "image": obj({"repository": {"type": "string", "minLength": 1}, "tag": string,
                      "digest": {"type": "string", "pattern": "^(sha256:[a-f0-9]{64})?$"},
                      "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}}, required=["repository"]),
        "imagePullSecrets": arr(anyobj),
        "serviceAccount": obj({"create": boolean, "name": string, "annotations": {"type": "object", "additionalProperties": string}}),
        "commonLabels": {"type": "object", "additionalProperties": string},
        "podAnnotations": {"type": "object", "additionalProperties": string},
        "podLabels": {"type": "object", "additionalProperties": string},
        "shutdown": obj({
            "drainSeconds": {"type": "integer", "minimum": 1, "description": "app.shutdown_timeout in seconds"},
            "preStopSleepSeconds": {"type": "integer", "minimum": 0},
            "graceMarginSeconds": {"type": "integer", "minimum": 1},
            "useSleepAction": boolean}, required=["drainSeconds", "preStopSleepSeconds", "graceMarginSeconds"]),
        "podSecurityContext": anyobj,
        "securityContext": anyobj,
        "tmpSizeLimit": string,
        "topologySpread": obj({"maxSkew": {"type": "integer", "minimum": 1},
                               "whenUnsatisfiable": {"enum": ["ScheduleAnyway", "DoNotSchedule"]},
                               "topologyKeys": arr(string)}),
        "gateway": with_ops_port(role(8080, True)),
        "worker": role(9090, False),
        "redis": obj({"url": {"type": "string", "pattern": "^rediss?://"}}, required=["url"]),
        "nats": obj({"url": {"type": "string", "pattern": "^(nats|tls|wss?)://"}}, required=["url"]),
        "mongodb": obj({"uri": {"type": "string", "pattern": "^mongodb(\\+srv)?://"}, "database": {"type": "string", "minLength": 1}}, required=["uri"]),
        "s3": obj({"bucket": string, "region": string, "endpoint": string, "publicEndpoint": string, "pathStyle": boolean, "serverSideEncryption": {"type": "string", "enum": ["none", "sse-s3", "sse-kms"]}, "kmsKeyId": string}),
        "llm": obj({"providers": arr(provider)}),
        "existingSecret": string,
        "secrets": obj({
            "jwtSecret": {"type": "string", "anyOf": [{"maxLength": 0}, {"minLength": 32}], "description": "HS256 secret, at least 32 characters; empty: generated"},
            "encryptionKey": {"type": "string", "pattern": "^([A-Za-z0-9+/]{43}=)?$", "description": "32 bytes in base64; empty: generated"},
            "oldEncryptionKeys": string, "blobSigningKey": string,
            "s3AccessKeyId": string, "s3SecretAccessKey": string,
            "smtpUsername": string, "smtpPassword": string,
            "sesAccessKeyId": string, "sesSecretAccessKey": string,
            "twilioAccountSid": string, "twilioAuthToken": string,
            "llmApiKeys": {"type": "object", "additionalProperties": string},
            "extraEnv": {"type": "object", "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}, "additionalProperties": {"type": ["string", "number", "boolean"]}},
            "annotations": {"type": "object", "additionalProperties": string},
        }),
        "config": cfg,
        "ingress": obj({"enabled": boolean, "className": string,
                        "annotations": {"type": "object", "additionalProperties": string},
                        "hosts": arr(obj({"host": string, "paths": arr(obj({"path": string, "pathType": {"enum": ["Prefix", "Exact", "ImplementationSpecific"]}}, required=["path"]))}, required=["paths"])),
                        "tls": arr(obj({"hosts": arr(string), "secretName": string}))}),
        "metrics": obj({
            "serviceMonitor": obj({"enabled": boolean, "labels": {"type": "object", "additionalProperties": string},
                                   "interval": string, "scrapeTimeout": string, "namespace": string}),
            "prometheusRule": obj({"enabled": boolean, "labels": {"type": "object", "additionalProperties": string}, "namespace": string}),
        }),
        "networkPolicy": obj({
            "enabled": boolean,
            "ingress": obj({"gatewayFrom": arr(anyobj), "workerFrom": arr(anyobj)}),
            "egress": obj({**{k: egress_rule for k in ("dns", "redis", "nats", "mongodb", "s3", "llm", "smtp", "otlp")},
                           "workerExtra": arr(anyobj), "gatewayExtra": arr(anyobj)}),
        }),
    },
}
json.dump(values, open('helm/chatbox/values.schema.json', 'w'), indent=2)
open('helm/chatbox/values.schema.json', 'a').write('\n')
