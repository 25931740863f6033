{{/* The release's full name, within Kubernetes' 63 characters. */}}
{{- define "outlookd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "outlookd.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (api or worker): call with (list . "api"). */}}
{{- define "outlookd.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ $root.Chart.Name }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "outlookd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "outlookd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "outlookd.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{/* Settings that are secrets, which config must not carry. */}}
{{- define "outlookd.checkConfig" -}}
{{- range $k := list "DATABASE_URL" "VAULT_TOKEN" "TEMPORAL_API_KEY" "TEMPORAL_TLS_CLIENT_KEY_DATA" -}}
{{- if hasKey $.Values.config $k -}}
{{- fail (printf "config.%s: a secret never goes in values; name an existing Secret instead (docs/deploy.md)" $k) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.temporal.apiKey.existingSecret .Values.temporal.mtls.existingSecret -}}
{{- fail "temporal: give apiKey.existingSecret or mtls.existingSecret, not both" -}}
{{- end -}}
{{- end -}}

{{/* Temporal's connection, as temporalconn reads it (TEMPORAL_*). */}}
{{- define "outlookd.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
- name: OUTLOOKD_TEMPORAL_COMPRESSION
  value: {{ .Values.temporal.compression | default "gzip" | quote }}
{{- if or .Values.temporal.tls .Values.temporal.apiKey.existingSecret .Values.temporal.mtls.existingSecret }}
- name: TEMPORAL_TLS
  value: "true"
{{- end }}
{{- with .Values.temporal.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if .Values.temporal.apiKey.existingSecret }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.temporal.apiKey.existingSecret }}
      key: {{ .Values.temporal.apiKey.key }}
{{- end }}
{{- if .Values.temporal.mtls.existingSecret }}
- name: TEMPORAL_TLS_CLIENT_CERT_PATH
  value: /var/run/secrets/outlookd/temporal/{{ .Values.temporal.mtls.certKey }}
- name: TEMPORAL_TLS_CLIENT_KEY_PATH
  value: /var/run/secrets/outlookd/temporal/{{ .Values.temporal.mtls.keyKey }}
{{- with .Values.temporal.mtls.caKey }}
- name: TEMPORAL_TLS_SERVER_CA_CERT_PATH
  value: /var/run/secrets/outlookd/temporal/{{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "outlookd.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret: the Secret holding the Postgres URL" .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
{{- end -}}

{{/* Everything serve reads: config, Postgres, Temporal and Vault. */}}
{{- define "outlookd.env" -}}
{{- include "outlookd.checkConfig" . }}
- name: OUTLOOKD_HTTP_ADDR
  value: "0.0.0.0:{{ .Values.api.port }}"
- name: OUTLOOKD_METRICS_ADDR
  value: "0.0.0.0:{{ .Values.metrics.port }}"
{{- range $k, $v := .Values.config }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{ include "outlookd.databaseEnv" . }}
{{ include "outlookd.temporalEnv" . }}
- name: VAULT_ADDR
  value: {{ .Values.vault.addr | quote }}
- name: OUTLOOKD_VAULT_KV_MOUNT
  value: {{ .Values.vault.kvMount | quote }}
- name: OUTLOOKD_VAULT_KV_PREFIX
  value: {{ .Values.vault.kvPrefix | quote }}
- name: OUTLOOKD_VAULT_ROLE_ID
  value: {{ required "vault.roleId: the AppRole role ID" .Values.vault.roleId | quote }}
- name: OUTLOOKD_VAULT_SECRET_ID_FILE
{{- if .Values.vault.agentInjector.enabled }}
  value: /vault/secrets/secret-id
{{- else }}
  value: /var/run/secrets/outlookd/vault/{{ .Values.vault.secretId.key }}
{{- end }}
{{- end -}}

{{/* Volumes for the secrets read as files and a writable /tmp. */}}
{{- define "outlookd.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if not .Values.vault.agentInjector.enabled }}
- name: vault-approle
  secret:
    secretName: {{ required "vault.secretId.existingSecret: the Secret holding the AppRole secret ID" .Values.vault.secretId.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- include "outlookd.temporalVolumes" . }}
{{- end -}}

{{- define "outlookd.temporalVolumes" -}}
{{- if .Values.temporal.mtls.existingSecret }}
- name: temporal-mtls
  secret:
    secretName: {{ .Values.temporal.mtls.existingSecret }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "outlookd.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if not .Values.vault.agentInjector.enabled }}
- name: vault-approle
  mountPath: /var/run/secrets/outlookd/vault
  readOnly: true
{{- end }}
{{- include "outlookd.temporalVolumeMounts" . }}
{{- end -}}

{{- define "outlookd.temporalVolumeMounts" -}}
{{- if .Values.temporal.mtls.existingSecret }}
- name: temporal-mtls
  mountPath: /var/run/secrets/outlookd/temporal
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod annotations: the Vault Agent Injector's, when it writes the secret ID. */}}
{{- define "outlookd.vaultAnnotations" -}}
{{- if .Values.vault.agentInjector.enabled }}
vault.hashicorp.com/agent-inject: "true"
vault.hashicorp.com/agent-pre-populate-only: "true"
vault.hashicorp.com/role: {{ .Values.vault.agentInjector.role | quote }}
vault.hashicorp.com/agent-inject-secret-secret-id: {{ printf "auth/approle/role/%s/secret-id" .Values.vault.agentInjector.approleRole | quote }}
vault.hashicorp.com/agent-inject-template-secret-id: |
  {{ printf "{{- with secret \"auth/approle/role/%s/secret-id\" \"num_uses=0\" -}}{{ .Data.secret_id }}{{- end -}}" .Values.vault.agentInjector.approleRole }}
{{- end }}
{{- end -}}
