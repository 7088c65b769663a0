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
{{- if .Values.adminToken.existingSecret }}
{{- $admin := get $cfg "admin" | default dict }}
{{- $_ := set $admin "token" (dict "env" "EXTAUTHZ_ADMIN_TOKEN") }}
{{- $_ := set $cfg "admin" $admin }}
{{- end }}
{{- toYaml $cfg }}
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
