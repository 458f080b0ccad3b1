{{/* The full name of the release's objects: the release name when it says archfit already. */}}
{{- define "archfit.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "archfit.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "archfit.labels" -}}
{{ include "archfit.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "archfit.serviceAccountName" -}}
{{- default (include "archfit.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "archfit.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "archfit.certSecret" -}}
{{- if .Values.certManager.enabled -}}
{{- printf "%s-tls" (include "archfit.fullname" .) -}}
{{- else -}}
{{- printf "%s-serving-cert" (include "archfit.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "archfit.waiversConfigMap" -}}
{{- if .Values.waivers.existingConfigMap -}}
{{- .Values.waivers.existingConfigMap -}}
{{- else if .Values.waivers.config -}}
{{- printf "%s-waivers" (include "archfit.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
The webhook's namespaceSelector: the user's selector, and never kube-system or the release
namespace (archfit's own pods).
*/}}
{{- define "archfit.namespaceSelector" -}}
{{- $sel := .Values.namespaceSelector | default dict -}}
{{- $excluded := list "kube-system" -}}
{{- if ne .Release.Namespace "kube-system" -}}
{{- $excluded = append $excluded .Release.Namespace -}}
{{- end -}}
{{- $exprs := concat ($sel.matchExpressions | default list) (list (dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" $excluded)) -}}
{{- if $sel.matchLabels }}
matchLabels:
  {{- toYaml $sel.matchLabels | nindent 2 }}
{{- end }}
matchExpressions:
  {{- toYaml $exprs | nindent 2 }}
{{- end -}}

{{/*
The user's namespaceSelector as a label selector string for --namespace-selector
(a=b,c in (d,e),f notin (g),h,!i).
*/}}
{{- define "archfit.namespaceSelectorFlag" -}}
{{- $sel := .Values.namespaceSelector | default dict -}}
{{- $parts := list -}}
{{- range $k, $v := ($sel.matchLabels | default dict) -}}
{{- $parts = append $parts (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- range ($sel.matchExpressions | default list) -}}
{{- if eq .operator "In" -}}
{{- $parts = append $parts (printf "%s in (%s)" .key (join "," .values)) -}}
{{- else if eq .operator "NotIn" -}}
{{- $parts = append $parts (printf "%s notin (%s)" .key (join "," .values)) -}}
{{- else if eq .operator "Exists" -}}
{{- $parts = append $parts .key -}}
{{- else if eq .operator "DoesNotExist" -}}
{{- $parts = append $parts (printf "!%s" .key) -}}
{{- else -}}
{{- fail (printf "namespaceSelector: operator %q of key %q is not In, NotIn, Exists or DoesNotExist" .operator .key) -}}
{{- end -}}
{{- end -}}
{{- join "," $parts -}}
{{- end -}}
