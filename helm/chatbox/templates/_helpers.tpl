{{/* Names and labels. */}}
{{- define "chatbox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chatbox.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "chatbox.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "chatbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "chatbox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatbox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one role: (dict "root" $ "role" "gateway") */}}
{{- define "chatbox.roleLabels" -}}
{{ include "chatbox.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "chatbox.roleSelectorLabels" -}}
{{ include "chatbox.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "chatbox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chatbox.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "chatbox.secretName" -}}
{{- default (include "chatbox.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "chatbox.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The env variable of a provider's API key: LLM_PROVIDER_<ID>_API_KEY. */}}
{{- define "chatbox.providerKeyEnv" -}}
{{- printf "LLM_PROVIDER_%s_API_KEY" (regexReplaceAll "[^A-Z0-9]" (upper .) "_") -}}
{{- end -}}

{{- define "chatbox.terminationGracePeriodSeconds" -}}
{{- add (int .Values.shutdown.preStopSleepSeconds) (int .Values.shutdown.drainSeconds) (int .Values.shutdown.graceMarginSeconds) -}}
{{- end -}}

{{/*
The configuration tree: what the chart derives from its values, with
.Values.config merged over it.
*/}}
{{- define "chatbox.configTree" -}}
{{- $s3 := dict "bucket" .Values.s3.bucket "region" .Values.s3.region "path_style" .Values.s3.pathStyle -}}
{{- with .Values.s3.endpoint }}{{ $_ := set $s3 "endpoint" . }}{{ end -}}
{{- with .Values.s3.publicEndpoint }}{{ $_ := set $s3 "public_endpoint" . }}{{ end -}}
{{- with .Values.s3.serverSideEncryption }}{{ $_ := set $s3 "server_side_encryption" . }}{{ end -}}
{{- with .Values.s3.kmsKeyId }}{{ $_ := set $s3 "kms_key_id" . }}{{ end -}}
{{- $llm := dict -}}
{{- with .Values.llm.providers }}{{ $_ := set $llm "providers" . }}{{ end -}}
{{- $chatbox := dict "store" (dict "database" .Values.mongodb.database) "blob" (dict "s3" $s3) "llm" $llm -}}
{{- $app := dict "shutdown_timeout" (printf "%ds" (int .Values.shutdown.drainSeconds)) -}}
{{- $tree := dict "app" $app "chatbox" $chatbox -}}
{{- $tree = mustMergeOverwrite $tree (deepCopy (default (dict) .Values.config)) -}}
{{- toJson $tree -}}
{{- end -}}

{{/* A TOML key: bare when it can be. */}}
{{- define "chatbox.toml.key" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{/* A TOML value: strings, numbers, booleans, arrays, inline tables. */}}
{{- define "chatbox.toml.value" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{ toJson $v }}
{{- else if kindIs "bool" $v -}}
{{ ternary "true" "false" $v }}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq (float64 (int64 $v)) (float64 $v) -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}
{{ $v }}
{{- else if kindIs "slice" $v -}}
{{- $items := list -}}
{{- range $v }}{{ $items = append $items (include "chatbox.toml.value" .) }}{{ end -}}
[{{ join ", " $items }}]
{{- else if kindIs "map" $v -}}
{{- $items := list -}}
{{- range $k, $x := $v }}{{ if not (kindIs "invalid" $x) }}{{ $items = append $items (printf "%s = %s" (include "chatbox.toml.key" $k) (include "chatbox.toml.value" $x)) }}{{ end }}{{ end -}}
{ {{- join ", " $items -}} }
{{- else -}}
{{- fail (printf "chatbox config: cannot write %v (%s) as TOML" $v (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{- define "chatbox.toml.isTableArray" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) (kindIs "map" (first .)) }}true{{ end -}}
{{- end -}}

{{/*
A TOML table: (dict "path" "chatbox.store" "table" $map). Plain keys first,
then sub-tables ([path.key]), then arrays of tables ([[path.key]], whose
own nested tables are written inline).
*/}}
{{- define "chatbox.toml.table" -}}
{{- $path := .path -}}
{{- $table := .table -}}
{{- range $k, $v := $table }}
{{- if and (not (kindIs "invalid" $v)) (not (kindIs "map" $v)) (not (include "chatbox.toml.isTableArray" $v)) }}
{{ include "chatbox.toml.key" $k }} = {{ include "chatbox.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := $table }}
{{- $sub := ternary (include "chatbox.toml.key" $k) (printf "%s.%s" $path (include "chatbox.toml.key" $k)) (eq $path "") }}
{{- if kindIs "map" $v }}
{{- $plain := 0 }}
{{- range $ik, $iv := $v }}{{ if and (not (kindIs "invalid" $iv)) (not (kindIs "map" $iv)) (not (include "chatbox.toml.isTableArray" $iv)) }}{{ $plain = add1 $plain }}{{ end }}{{ end }}
{{- if or $plain (not $v) }}

[{{ $sub }}]
{{- end }}
{{- include "chatbox.toml.table" (dict "path" $sub "table" $v) }}
{{- end }}
{{- end }}
{{- range $k, $v := $table }}
{{- $sub := ternary (include "chatbox.toml.key" $k) (printf "%s.%s" $path (include "chatbox.toml.key" $k)) (eq $path "") }}
{{- if include "chatbox.toml.isTableArray" $v }}
{{- range $v }}

[[{{ $sub }}]]
{{- range $ik, $iv := . }}
{{- if not (kindIs "invalid" $iv) }}
{{ include "chatbox.toml.key" $ik }} = {{ include "chatbox.toml.value" $iv }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "chatbox.configToml" -}}
# Rendered by the chatbox Helm chart from its values (config, s3, mongodb,
# llm, shutdown). Secrets come from the environment, not from this file.
{{- include "chatbox.toml.table" (dict "path" "" "table" (include "chatbox.configTree" . | fromJson)) }}
{{ end -}}

{{/* Environment shared by both roles. */}}
{{- define "chatbox.commonEnv" -}}
- name: POD_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: CHATBOX_CONFIG
  value: /etc/chatbox/chatbox.toml
- name: CHATBOX_APP_SHUTDOWN_TIMEOUT
  value: {{ printf "%ds" (int .Values.shutdown.drainSeconds) | quote }}
- name: CHATBOX_DATA_DIR
  value: /tmp/chatbox
- name: JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "chatbox.secretName" . }}
      key: JWT_SECRET
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "chatbox.secretName" . }}
      key: REDIS_URL
- name: NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "chatbox.secretName" . }}
      key: NATS_URL
{{- range $k, $v := .Values.secrets.extraEnv }}
- name: {{ $k }}
  valueFrom:
    secretKeyRef:
      name: {{ include "chatbox.secretName" $ }}
      key: {{ $k }}
      optional: true
{{- end }}
{{- end -}}

{{/* Secret keys only workers read (optional ones may be absent). */}}
{{- define "chatbox.workerSecretKeys" -}}
{{- $keys := list "MONGO_URI" "ENCRYPTION_KEY" "CHATBOX_STORE_OLD_ENCRYPTION_KEYS" "CHATBOX_BLOB_SIGNING_KEY" "CHATBOX_BLOB_S3_ACCESS_KEY_ID" "CHATBOX_BLOB_S3_SECRET_ACCESS_KEY" "SMTP_USER" "SMTP_PASS" "SES_ACCESS_KEY_ID" "SES_SECRET_ACCESS_KEY" "TWILIO_ACCOUNT_SID" "TWILIO_AUTH_TOKEN" -}}
{{- range .Values.llm.providers }}{{ $keys = append $keys (include "chatbox.providerKeyEnv" .id) }}{{ end -}}
{{- toJson $keys -}}
{{- end -}}

{{/* Default topology spread of a role: (dict "root" $ "role" "gateway" "own" list) */}}
{{- define "chatbox.topologySpread" -}}
{{- if .own -}}
{{ toYaml .own }}
{{- else -}}
{{- $root := .root -}}
{{- $role := .role -}}
{{- range $root.Values.topologySpread.topologyKeys }}
- maxSkew: {{ $root.Values.topologySpread.maxSkew }}
  topologyKey: {{ . }}
  whenUnsatisfiable: {{ $root.Values.topologySpread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "chatbox.roleSelectorLabels" (dict "root" $root "role" $role) | nindent 6 }}
{{- end }}
{{- end -}}
{{- end -}}

{{- define "chatbox.preStop" -}}
preStop:
{{- if .Values.shutdown.useSleepAction }}
  sleep:
    seconds: {{ int .Values.shutdown.preStopSleepSeconds }}
{{- else }}
  exec:
    command: ["sleep", "{{ int .Values.shutdown.preStopSleepSeconds }}"]
{{- end }}
{{- end -}}
