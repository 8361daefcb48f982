{{/* Chart name, or nameOverride. */}}
{{- define "copilot-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name, at most 63 characters. */}}
{{- define "copilot-exporter.fullname" -}}
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

{{- define "copilot-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the exporter's pods (Deployment and Service selectors). */}}
{{- define "copilot-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "copilot-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "copilot-exporter.labels" -}}
helm.sh/chart: {{ include "copilot-exporter.chart" . }}
{{ include "copilot-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: copilot-exporter
{{- end }}

{{- define "copilot-exporter.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Where GITHUB_TOKEN comes from: "true" when a Secret provides it. */}}
{{- define "copilot-exporter.hasToken" -}}
{{- if or .Values.github.existingSecret .Values.github.token }}true{{ end }}
{{- end }}

{{- define "copilot-exporter.tokenSecretName" -}}
{{- if .Values.github.existingSecret }}
{{- .Values.github.existingSecret }}
{{- else }}
{{- include "copilot-exporter.fullname" . }}-github
{{- end }}
{{- end }}

{{- define "copilot-exporter.tokenSecretKey" -}}
{{- if .Values.github.existingSecret }}
{{- .Values.github.existingSecretKey | default "token" }}
{{- else }}token{{ end }}
{{- end }}

{{/* HTTP or HTTPS, following webConfig unless probes.scheme says otherwise. */}}
{{- define "copilot-exporter.scheme" -}}
{{- if .Values.probes.scheme }}
{{- .Values.probes.scheme | upper }}
{{- else if and .Values.webConfig (hasKey .Values.webConfig "tls_server_config") }}HTTPS
{{- else }}HTTP{{ end }}
{{- end }}

{{- define "copilot-exporter.webConfigPath" -}}
/etc/copilot-exporter-web/web-config.yaml
{{- end }}

{{/*
How the kubelet checks the pod: GET /healthz (no credentials needed: basic auth spares it), or
a TCP connection when the web config requires client certificates, which the kubelet cannot
present.
*/}}
{{- define "copilot-exporter.probeHandler" -}}
{{- $tls := (.Values.webConfig | default dict).tls_server_config | default dict }}
{{- if has ($tls.client_auth_type | default "NoClientCert") (list "RequireAnyClientCert" "RequireAndVerifyClientCert") }}
tcpSocket:
  port: http-metrics
{{- else }}
httpGet:
  path: /healthz
  port: http-metrics
  scheme: {{ include "copilot-exporter.scheme" . }}
  {{- with .Values.probes.httpHeaders }}
  httpHeaders:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* The exporter's state directory: a writable volume under a read-only root filesystem. */}}
{{- define "copilot-exporter.stateDir" -}}
/var/lib/copilot-exporter
{{- end }}
