{{/* The app name: the chart name unless nameOverride. */}}
{{- define "meshgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: fullnameOverride, else the release name when it
contains the app name (`helm install meshgate` gives "meshgate", as in
deploy/base), else RELEASE-NAME.
*/}}
{{- define "meshgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "meshgate.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "meshgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: the app name only, exactly as deploy/base, so that the base
and the chart select the same pods (one release per namespace).
*/}}
{{- define "meshgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshgate.name" . }}
{{- end }}

{{/* Labels of every object: deploy/base's two plus Helm's bookkeeping. */}}
{{- define "meshgate.labels" -}}
{{ include "meshgate.selectorLabels" . }}
app.kubernetes.io/part-of: meshgate
helm.sh/chart: {{ include "meshgate.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
{{- end }}

{{/* The `gateway run` arguments. */}}
{{- define "meshgate.args" -}}
- run
- --kubernetes
{{- if .Values.leaderElection.enabled }}
- --leader-elect
{{- end }}
- {{ printf "--gateway-service=%s" (include "meshgate.fullname" .) | quote }}
- {{ printf "--admin-addr=0.0.0.0:%v" .Values.ports.admin | quote }}
- {{ printf "--shutdown-delay=%s" .Values.shutdownDelay | quote }}
- {{ printf "--drain-timeout=%s" .Values.drainTimeout | quote }}
{{- if ne .Values.gatewayClass.controllerName "gateway.meshgate.dev/controller" }}
- {{ printf "--controller-name=%s" .Values.gatewayClass.controllerName | quote }}
{{- end }}
{{- with .Values.trustedProxies }}
- {{ printf "--trusted-proxies=%s" (join "," .) | quote }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
