{{/*
Chart name, truncated to 63 characters (the DNS label limit of Kubernetes names).
*/}}
{{- define "lease-elector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: fullnameOverride, or the release name if it already contains the chart
name, or "<release>-<chart>"; truncated to 63 characters.
*/}}
{{- define "lease-elector.fullname" -}}
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

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "lease-elector.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "lease-elector.labels" -}}
helm.sh/chart: {{ include "lease-elector.chart" . }}
{{ include "lease-elector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: leader-election
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: immutable in a Deployment, so only name and instance.
*/}}
{{- define "lease-elector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lease-elector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount to use.
*/}}
{{- define "lease-elector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lease-elector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the Lease: election.leaseName, or the full name.
*/}}
{{- define "lease-elector.leaseName" -}}
{{- default (include "lease-elector.fullname" .) .Values.election.leaseName }}
{{- end }}

{{/*
Container image reference: repository@digest, or repository:tag (tag defaults to appVersion).
*/}}
{{- define "lease-elector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Milliseconds of a duration of the forms the schema allows ("15s", "1m30s", "500ms", "1h").
Call: include "lease-elector.durationMs" "1m30s"
*/}}
{{- define "lease-elector.durationMs" -}}
{{- $ms := 0 }}
{{- range $part := regexFindAll "[0-9]+(ms|s|m|h)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+" $part | atoi }}
{{- $unit := trimPrefix (regexFind "^[0-9]+" $part) $part }}
{{- if eq $unit "ms" }}{{ $ms = add $ms $n }}
{{- else if eq $unit "s" }}{{ $ms = add $ms (mul $n 1000) }}
{{- else if eq $unit "m" }}{{ $ms = add $ms (mul $n 60000) }}
{{- else if eq $unit "h" }}{{ $ms = add $ms (mul $n 3600000) }}
{{- end }}
{{- end }}
{{- $ms }}
{{- end }}

{{/*
Checks the election timing like the daemon and client-go do, so a bad combination
fails at install time instead of in a crash-looping pod:
leaseDuration > renewDeadline > 1.2 x retryPeriod > 0, and with a workload
renewDeadline + run.gracePeriod < leaseDuration.
*/}}
{{- define "lease-elector.validate" -}}
{{- $ld := include "lease-elector.durationMs" .Values.election.leaseDuration | int }}
{{- $rd := include "lease-elector.durationMs" .Values.election.renewDeadline | int }}
{{- $rp := include "lease-elector.durationMs" .Values.election.retryPeriod | int }}
{{- $gp := include "lease-elector.durationMs" .Values.run.gracePeriod | int }}
{{- if le $rp 0 }}
{{- fail "election.retryPeriod must be greater than 0" }}
{{- end }}
{{- if le $ld $rd }}
{{- fail (printf "election.leaseDuration (%s) must be longer than election.renewDeadline (%s)" .Values.election.leaseDuration .Values.election.renewDeadline) }}
{{- end }}
{{- if le (mul $rd 10) (mul $rp 12) }}
{{- fail (printf "election.renewDeadline (%s) must be longer than 1.2 x election.retryPeriod (%s)" .Values.election.renewDeadline .Values.election.retryPeriod) }}
{{- end }}
{{- if and .Values.workload.command (le $ld (add $rd $gp)) }}
{{- fail (printf "election.renewDeadline (%s) + run.gracePeriod (%s) must be shorter than election.leaseDuration (%s): the workload must be stopped before another candidate can take over" .Values.election.renewDeadline .Values.run.gracePeriod .Values.election.leaseDuration) }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.podMonitor.enabled }}
{{- fail "serviceMonitor.enabled and podMonitor.enabled are exclusive: each would scrape every candidate, doubling the series and breaking the alerts' sums" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.service.enabled) }}
{{- fail "serviceMonitor.enabled needs service.enabled" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (eq .Values.http.readiness "leader") }}
{{- fail "http.readiness=leader leaves only the leader ready, so a PodDisruptionBudget would block evicting it forever: set podDisruptionBudget.enabled=false" }}
{{- end }}
{{- if and .Values.tests.enabled (not .Values.service.enabled) }}
{{- fail "tests.enabled needs service.enabled" }}
{{- end }}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
{{- if le (mul (int .Values.terminationGracePeriodSeconds) 1000) $rd }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be longer than election.renewDeadline (%s)" .Values.terminationGracePeriodSeconds .Values.election.renewDeadline) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the value, or renewDeadline (+ run.gracePeriod with a
workload) + 10 s, at least 30 s.
*/}}
{{- define "lease-elector.terminationGracePeriodSeconds" -}}
{{- if not (kindIs "invalid" .Values.terminationGracePeriodSeconds) }}
{{- .Values.terminationGracePeriodSeconds }}
{{- else }}
{{- $ms := include "lease-elector.durationMs" .Values.election.renewDeadline | int }}
{{- if .Values.workload.command }}
{{- $ms = add $ms (include "lease-elector.durationMs" .Values.run.gracePeriod | int) }}
{{- end }}
{{- $s := add (div (add $ms 999) 1000) 10 }}
{{- max $s 30 }}
{{- end }}
{{- end }}
