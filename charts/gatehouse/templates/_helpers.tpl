{{/* Labels on every object the templates render; the selector is the stable subset. */}}
{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: gatehouse
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gatehouse.labels" -}}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The username the API server sees for the operator: its ServiceAccount (serviceaccount.yaml). */}}
{{- define "gatehouse.operatorUsername" -}}
system:serviceaccount:{{ .Release.Namespace }}:gatehouse
{{- end }}
