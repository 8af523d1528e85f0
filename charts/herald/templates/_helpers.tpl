{{/*
herald.fullname prefixes every object's name: the release name when it
already contains the chart's name (release "herald" gives "herald-manager",
the names config/default uses), else <release>-herald.
*/}}
{{- define "herald.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* herald.selectorLabels pick the manager's pods; they never change after install. */}}
{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: manager
{{- end -}}

{{/* herald.labels go on every object. */}}
{{- define "herald.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "herald.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* herald.imageTag is image.tag, or the chart's appVersion when empty. */}}
{{- define "herald.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{/* herald.serviceAccountName is the manager's ServiceAccount. */}}
{{- define "herald.serviceAccountName" -}}
{{- if .Values.serviceAccount.name -}}
{{- .Values.serviceAccount.name -}}
{{- else if .Values.serviceAccount.create -}}
{{- printf "%s-manager" (include "herald.fullname" .) -}}
{{- else -}}
{{- fail "serviceAccount.name is required when serviceAccount.create is false" -}}
{{- end -}}
{{- end -}}

{{/* herald.metricsSecure is "true" when metrics are served over authenticated HTTPS. */}}
{{- define "herald.metricsSecure" -}}
{{- and .Values.metrics.enabled .Values.metrics.secure -}}
{{- end -}}

{{/*
herald.watchNamespaces is watchNamespaces (a list, or a comma-separated
string) as the comma-separated list --watch-namespace takes, without blanks
and repeats; empty means every namespace. A name no namespace can have
fails the render: the manager would refuse it at start.
*/}}
{{- define "herald.watchNamespaces" -}}
{{- $given := .Values.watchNamespaces | default list -}}
{{- if kindIs "string" $given -}}
{{- $given = splitList "," $given -}}
{{- end -}}
{{- $out := list -}}
{{- range $given -}}
{{- $ns := toString . | trim -}}
{{- if $ns -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" $ns) -}}
{{- fail (printf "watchNamespaces: %q is not a namespace name (lower case letters, digits and '-', at most 63)" $ns) -}}
{{- end -}}
{{- $out = append $out $ns -}}
{{- end -}}
{{- end -}}
{{- $out | uniq | join "," -}}
{{- end -}}

{{/*
herald.validate stops a release that would misbehave: two managers without
leader election would both hold broker sessions under the same client IDs
and take each other's connections away.
*/}}
{{- define "herald.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicas is %d but leaderElection.enabled is false: without a leader every replica connects to the brokers with the same client IDs; set replicas: 1 or enable leader election" (int .Values.replicas)) -}}
{{- end -}}
{{- end -}}
