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

{{/* The Deployment's and Service's name: the workload's in sidecar mode. */}}
{{- define "paybridge.workloadName" -}}
{{- if .Values.sidecar.enabled -}}
{{- required "sidecar.name is required in sidecar mode" .Values.sidecar.name -}}
{{- else -}}
{{- include "paybridge.fullname" . -}}
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

{{/* The paybridge version whose image the chart runs by default (kept equal to the chart's
appVersion and the crate's version by scripts/release; a test checks it). A literal, so a
chart that includes the templates below gets it too. */}}
{{- define "paybridge.appVersion" -}}0.1.0{{- end -}}

{{/* The image of a values tree: image.repository and image.tag, else this version. */}}
{{- define "paybridge.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default (include "paybridge.appVersion" .)) -}}
{{- end -}}

{{/* The ConfigMap holding paybridge.toml, from the release alone (the same name whether
this chart renders the pod or another chart including it as a dependency does). */}}
{{- define "paybridge.configName" -}}
{{- if contains "paybridge" .Name -}}
{{- printf "%s-config" .Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-paybridge-config" .Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Whether an "IP:port" listen address is on loopback (only its own pod reaches it). */}}
{{- define "paybridge.loopback" -}}
{{- if regexMatch "^(127\\.|localhost:|\\[::1\\]:)" . -}}true{{- end -}}
{{- end -}}

{{/*
The paybridge container and the volumes it mounts. This chart's Deployment uses them; so
can another chart's pod, with this chart as its dependency and `paybridge.embedded: true`
(docs/src/kubernetes.md, the only way documented):
  containers:
    {{- include "paybridge.container" (dict "Values" .Values.paybridge) | nindent 4 }}
  volumes:
    {{- include "paybridge.volumes" (dict "Values" .Values.paybridge "Release" .Release) | nindent 4 }}
*/}}
{{- define "paybridge.container" -}}
{{- $v := .Values -}}
- name: paybridge
  image: {{ include "paybridge.image" $v | quote }}
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
    {{- include "paybridge.volumeMounts" $v | nindent 4 }}
{{- end -}}

{{/* `paybridge doctor` with the paybridge container's image, environment, mounts and limits. */}}
{{- define "paybridge.doctorContainer" -}}
{{- $v := .Values -}}
- name: paybridge-doctor
  image: {{ include "paybridge.image" $v | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args: ["doctor", "--config", "/etc/paybridge/paybridge.toml"]
  {{- include "paybridge.env" $v | nindent 2 }}
  resources:
    {{- toYaml $v.resources | nindent 4 }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  volumeMounts:
    {{- include "paybridge.volumeMounts" $v | nindent 4 }}
{{- end -}}

{{/* Where the paybridge container mounts its config, secretFiles and extraVolumeMounts. */}}
{{- define "paybridge.volumeMounts" -}}
- name: paybridge-config
  mountPath: /etc/paybridge
  readOnly: true
{{- range $i, $f := .secretFiles }}
- name: paybridge-secret-{{ $i }}
  mountPath: {{ $f.mountPath }}
  readOnly: true
{{- end }}
{{- with .extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The volumes the paybridge container mounts. */}}
{{- define "paybridge.volumes" -}}
- name: paybridge-config
  configMap:
    name: {{ include "paybridge.configName" .Release }}
{{- range $i, $f := .Values.secretFiles }}
- name: paybridge-secret-{{ $i }}
  secret:
    secretName: {{ $f.secretName }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
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
