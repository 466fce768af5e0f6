{{/*
config.toml of the daemon. Identity is not set: it defaults to $POD_NAME.
Strings go through toJson, which yields valid TOML basic strings.
*/}}
{{- define "lease-elector.configToml" -}}
# Rendered by the lease-elector Helm chart; LEASE_ELECTOR_* environment variables override it.
lease = {{ include "lease-elector.leaseName" . | toJson }}
namespace = {{ .Release.Namespace | toJson }}
lease_duration = {{ .Values.election.leaseDuration | toString | toJson }}
renew_deadline = {{ .Values.election.renewDeadline | toString | toJson }}
retry_period = {{ .Values.election.retryPeriod | toString | toJson }}
release_on_cancel = {{ .Values.election.releaseOnCancel }}

[http]
listen = {{ printf "0.0.0.0:%d" (int .Values.http.port) | toJson }}
readiness = {{ .Values.http.readiness | toJson }}

[log]
format = {{ .Values.log.format | toJson }}
level = {{ .Values.log.level | toJson }}
{{- with .Values.otel.endpoint }}

[otel]
endpoint = {{ . | toJson }}
{{- end }}

[run]
stop_signal = {{ .Values.run.stopSignal | toJson }}
grace_period = {{ .Values.run.gracePeriod | toString | toJson }}
on_child_exit = {{ .Values.run.onChildExit | toJson }}
label_pod = {{ .Values.run.labelPod }}
{{- end }}
