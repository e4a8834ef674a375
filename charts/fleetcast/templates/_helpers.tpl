{{/* Base name: the release name, or <release>-fleetcast when it does not say fleetcast. */}}
{{- define "fleetcast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The operator's objects: fleetcast-operator for release "fleetcast". */}}
{{- define "fleetcast.operator" -}}
{{- printf "%s-operator" (include "fleetcast.fullname" .) -}}
{{- end -}}

{{- define "fleetcast.selectorLabels" -}}
app.kubernetes.io/name: fleetcast-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fleetcast.labels" -}}
{{ include "fleetcast.selectorLabels" . }}
app.kubernetes.io/part-of: fleetcast
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "fleetcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fleetcast.operator" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fleetcast.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The operator's pod and container security: non-root, read-only, no capabilities. */}}
{{- define "fleetcast.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "fleetcast.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
