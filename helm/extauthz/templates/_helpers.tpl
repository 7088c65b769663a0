{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "extauthz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "extauthz.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "extauthz.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "extauthz.labels" -}}
helm.sh/chart: {{ include "extauthz.chart" . }}
{{ include "extauthz.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "extauthz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "extauthz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "extauthz.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "extauthz.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The gateway's policy file: .Values.config with the listeners the pod needs
and the secret references the chart wires. The listeners bind every
interface of the pod (the admin one too, so that Prometheus can scrape it;
the NetworkPolicy and the Service keep it private).
*/}}
{{- define "extauthz.config" -}}
{{- if hasKey .Values.config "listen" }}
{{- fail "config.listen is set by the chart from .Values.ports; remove it from config" }}
{{- end }}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen" (dict "grpc" (printf "0.0.0.0:%d" (int .Values.ports.grpc)) "http" (printf "0.0.0.0:%d" (int .Values.ports.http)) "admin" (printf "0.0.0.0:%d" (int .Values.ports.admin))) }}
{{- if or .Values.redis.url .Values.redis.password.existingSecret }}
{{- $cache := get $cfg "cache" | default dict }}
{{- if .Values.redis.url }}
{{- $_ := set $cache "redis_url" .Values.redis.url }}
{{- end }}
{{- if .Values.redis.password.existingSecret }}
{{- $_ := set $cache "redis_password" (dict "env" "EXTAUTHZ_REDIS_PASSWORD") }}
{{- end }}
{{- $_ := set $cfg "cache" $cache }}
{{- end }}
{{- if .Values.extProc.enabled }}
{{- $ep := get $cfg "ext_proc" | default dict }}
{{- $_ := set $ep "enabled" true }}
{{- $_ := set $cfg "ext_proc" $ep }}
{{- end }}
{{- $admin := get $cfg "admin" | default dict }}
{{- if .Values.adminToken.existingSecret }}
{{- $_ := set $admin "token" (dict "env" "EXTAUTHZ_ADMIN_TOKEN") }}
{{- end }}
{{- /* pprof is off unless config.admin.pprof turns it on: written out, so that the rendered file says so. */}}
{{- if not (hasKey $admin "pprof") }}
{{- $_ := set $admin "pprof" false }}
{{- end }}
{{- $_ := set $cfg "admin" $admin }}
{{- toYaml $cfg }}
{{- end }}

{{/*
A Kubernetes memory quantity in bytes: an integer with an optional binary
(Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffix.
*/}}
{{- define "extauthz.bytes" -}}
{{- $q := toString . }}
{{- $n := regexFind "^[0-9]+" $q }}
{{- $unit := trimPrefix $n $q }}
{{- $factors := dict "" 1 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 }}
{{- if or (not $n) (not (hasKey $factors $unit)) }}
{{- fail (printf "resources.limits.memory %q: goMemLimit auto reads an integer with a suffix among Ki, Mi, Gi, Ti, k, M, G, T; write it so, or set goMemLimit yourself" $q) }}
{{- end }}
{{- mul (int64 $n) (get $factors $unit) }}
{{- end }}

{{/*
GOMEMLIMIT, in bytes, for goMemLimit "auto": the container's memory limit
less the compact cache's slab — cache.max_entries entries of 144 bytes and
8 of index, mapped outside the Go heap (pkg/verdict), which the Go runtime's
limit does not count — less a tenth for the rest of the process. Empty
without a memory limit. The default of cache.max_entries is the gateway's
(pkg/config); the chart's tests check that the two agree.
*/}}
{{- define "extauthz.goMemLimit" -}}
{{- $v := .Values.goMemLimit | toString }}
{{- if eq $v "auto" }}
{{- with (.Values.resources.limits | default dict).memory }}
{{- $limit := include "extauthz.bytes" . | int64 }}
{{- $entries := 100000 }}
{{- if not $.Values.envConfig }}
{{- $entries = (($.Values.config.cache | default dict).max_entries | default 100000) }}
{{- end }}
{{- $slab := mul (int64 $entries) 152 }}
{{- if le $limit $slab }}
{{- fail (printf "resources.limits.memory (%d bytes) does not exceed the compact cache's slab (%d entries × 152 bytes = %d): raise the limit or lower config.cache.max_entries" $limit (int64 $entries) $slab) }}
{{- end }}
{{- div (mul (sub $limit $slab) 9) 10 }}
{{- end }}
{{- else }}
{{- $v }}
{{- end }}
{{- end }}

{{/*
envConfig is the whole configuration in env mode; the chart sets the
listeners and the Redis URL itself, and secrets come from Secrets.
*/}}
{{- define "extauthz.envConfigCheck" -}}
{{- if .Values.extProc.enabled }}
{{- fail "extProc.enabled needs the policy file (config): the configuration from the environment has no ext_proc" }}
{{- end }}
{{- range $name, $_ := .Values.envConfig }}
{{- if or (hasPrefix "EXTAUTHZ_LISTEN_" $name) (eq $name "EXTAUTHZ_REDIS_URL") (eq $name "EXTAUTHZ_CONFIG") }}
{{- fail (printf "envConfig.%s is set by the chart (from ports and redis.url); remove it" $name) }}
{{- end }}
{{- if or (hasSuffix "_SECRET" $name) (hasSuffix "_PASSWORD" $name) (hasSuffix "_TOKEN" $name) }}
{{- fail (printf "envConfig.%s is a secret: set it from a Secret with secretEnv (or redis.password / adminToken)" $name) }}
{{- end }}
{{- end }}
{{- end }}
