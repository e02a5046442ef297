{{- define "paybridge.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "paybridge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "paybridge.labels" -}}
app.kubernetes.io/name: {{ include "paybridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "paybridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "paybridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "paybridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "paybridge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The port of an "IP:port" listen address. */}}
{{- define "paybridge.port" -}}
{{- regexFind "[0-9]+$" . -}}
{{- end -}}

{{/* Seconds of a duration like "25s", "1m" or "1m 30s" (s, m and h terms). */}}
{{- define "paybridge.seconds" -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+\\s*[smh]" . -1 -}}
{{- $n := int (regexFind "[0-9]+" .) -}}
{{- if hasSuffix "h" . -}}{{- $total = add $total (mul $n 3600) -}}
{{- else if hasSuffix "m" . -}}{{- $total = add $total (mul $n 60) -}}
{{- else -}}{{- $total = add $total $n -}}{{- end -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
The paybridge container, its probes and mounts: used by this chart's Deployment and by
other charts' pods (sidecar mode):
  containers:
    {{- include "paybridge.container" (dict "Values" .Values.paybridge "configMap" "my-paybridge-config") | nindent 4 }}
with .Values.paybridge holding this chart's values (image, env, secretEnv, resources, ...).
*/}}
{{- define "paybridge.container" -}}
{{- $v := .Values -}}
- name: paybridge
  image: "{{ $v.image.repository }}:{{ $v.image.tag | default .appVersion | default "latest" }}"
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["run", "--config", "/etc/paybridge/paybridge.toml"]
  ports:
    - name: intake
      containerPort: {{ include "paybridge.port" $v.config.intake.listen }}
      protocol: TCP
    - name: admin
      containerPort: {{ include "paybridge.port" $v.config.admin.listen }}
      protocol: TCP
  {{- include "paybridge.env" $v | nindent 2 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    periodSeconds: 5
    failureThreshold: 2
  startupProbe:
    httpGet:
      path: /healthz
      port: admin
    periodSeconds: 2
    failureThreshold: 30
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    - name: paybridge-config
      mountPath: /etc/paybridge
      readOnly: true
    {{- range $i, $f := $v.secretFiles }}
    - name: paybridge-secret-{{ $i }}
      mountPath: {{ $f.mountPath }}
      readOnly: true
    {{- end }}
{{- end -}}

{{/* The volumes the paybridge container mounts (sidecar mode: add them to the pod). */}}
{{- define "paybridge.volumes" -}}
- name: paybridge-config
  configMap:
    name: {{ .configMap }}
{{- range $i, $f := .Values.secretFiles }}
- name: paybridge-secret-{{ $i }}
  secret:
    secretName: {{ $f.secretName }}
{{- end }}
{{- end -}}

{{/* The container's environment: secretEnv by reference, env, existingSecret as envFrom. */}}
{{- define "paybridge.env" -}}
{{- if or .env .secretEnv }}
env:
  {{- range .secretEnv }}
  - name: {{ .name }}
    valueFrom:
      secretKeyRef:
        name: {{ .secretName }}
        key: {{ .key }}
  {{- end }}
  {{- with .env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- if .existingSecret }}
envFrom:
  - secretRef:
      name: {{ .existingSecret }}
{{- end }}
{{- end -}}
