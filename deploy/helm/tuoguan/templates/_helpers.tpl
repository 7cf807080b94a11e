{{/* Names */}}
{{- define "tuoguan.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tuoguan.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The name of one component's objects: (dict "root" $ "component" "gateway") */}}
{{- define "tuoguan.componentName" -}}
{{- printf "%s-%s" (include "tuoguan.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tuoguan.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tuoguan.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tuoguan.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Labels: (dict "root" $ "component" "gateway" ["image" $c.image]); the version is
the tag of the image the component runs.
*/}}
{{- define "tuoguan.labels" -}}
helm.sh/chart: {{ include "tuoguan.chart" .root }}
{{ include "tuoguan.selectorLabels" . }}
app.kubernetes.io/version: {{ include "tuoguan.imageTag" . | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tuoguan
{{- end -}}

{{- define "tuoguan.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tuoguan.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* A NetworkPolicy peer selecting one component's pods. */}}
{{- define "tuoguan.peer" -}}
- podSelector:
    matchLabels:
      {{- include "tuoguan.selectorLabels" . | nindent 6 }}
{{- end -}}

{{/*
The platform image of one component, by digest when one is given:
(dict "root" $ "image" $c.image), the image from services.<name>.image over the
global image, key by key (an empty key falls back). The global digest names the
global repository:tag, so a component naming its own repository or tag does not
inherit it: it would otherwise pull the global image under the new tag's name.
*/}}
{{- define "tuoguan.image" -}}
{{- $global := .root.Values.image -}}
{{- $own := default dict .image -}}
{{- $repository := default $global.repository $own.repository -}}
{{- $tag := include "tuoguan.imageTag" . -}}
{{- $digest := $own.digest -}}
{{- if not (or $digest $own.repository $own.tag) -}}
{{- $digest = $global.digest -}}
{{- end -}}
{{- if $digest -}}
{{- printf "%s:%s@%s" $repository $tag $digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The tag of one component's image: (dict "root" $ ["image" $c.image]) */}}
{{- define "tuoguan.imageTag" -}}
{{- default (default .root.Chart.AppVersion .root.Values.image.tag) (default dict .image).tag -}}
{{- end -}}

{{/*
The enabled components: every entry of .Values.services merged over
.Values.default, as YAML (use with fromYaml).
*/}}
{{- define "tuoguan.components" -}}
{{- $out := dict -}}
{{- range $name, $cfg := .Values.services -}}
{{- if $cfg -}}
{{- $c := mergeOverwrite (deepCopy $.Values.default) (deepCopy $cfg) -}}
{{- if $c.enabled -}}
{{- $_ := set $out $name $c -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The port Prometheus scrapes on a component. */}}
{{- define "tuoguan.metricsPort" -}}
{{- if .ports.metrics -}}{{ .ports.metrics }}{{- else -}}{{ .ports.http }}{{- end -}}
{{- end -}}
{{- define "tuoguan.metricsPortName" -}}
{{- if .ports.metrics -}}metrics{{- else -}}http{{- end -}}
{{- end -}}

{{/* Secrets */}}
{{- define "tuoguan.credentialsSecret" -}}
{{- default (printf "%s-credentials" (include "tuoguan.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}
{{- define "tuoguan.tokenKeysSecret" -}}
{{- default (printf "%s-token-keys" (include "tuoguan.fullname" .)) .Values.secrets.tokenKeys.existingSecret -}}
{{- end -}}

{{/* The migrate Job's hook. */}}
{{- define "tuoguan.migrationsHook" -}}
{{- if .Values.migrations.hook -}}
{{- .Values.migrations.hook -}}
{{- else if or .Values.postgresql.enabled .Values.rabbitmq.enabled -}}
post-install,pre-upgrade
{{- else -}}
pre-install,pre-upgrade
{{- end -}}
{{- end -}}

{{/*
One container of the migrate Job: (dict "root" $ "name" "migrate" "group" (dict "image" ... "script" (list ...))
"migrate" $services "credentials" $secret "d" .Values.default). Every container gets the same
environment: which service a step migrates is in its script, not in what it may read.
*/}}
{{- define "tuoguan.migrateContainer" -}}
{{- $root := .root -}}
{{- $credentials := .credentials -}}
- name: {{ .name }}
  image: {{ .group.image }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: [sh, -c]
  args:
    - {{ join "\n" .group.script | quote }}
  env:
    - name: LOG_LEVEL
      value: {{ $root.Values.env.LOG_LEVEL | default "INFO" | quote }}
    - name: WAIT_SECONDS
      value: {{ $root.Values.migrations.waitSeconds | quote }}
    - name: DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ $credentials }}
          key: database-url
    {{- /* Past a transaction pooler when given (config.migrations_database_url). */}}
    - name: MIGRATIONS_DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ $credentials }}
          key: migrations-database-url
          optional: true
    {{- range .migrate }}
    - name: {{ upper . }}_DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ $credentials }}
          key: {{ . }}-database-url
          optional: true
    - name: {{ upper . }}_MIGRATIONS_DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ $credentials }}
          key: {{ . }}-migrations-database-url
          optional: true
    {{- end }}
    - name: AMQP_URI
      valueFrom:
        secretKeyRef:
          name: {{ $credentials }}
          key: amqp-uri
  resources:
    {{- toYaml $root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml .d.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end -}}

{{/* Where traces go: the in-chart collector, an external one, or nowhere. */}}
{{- define "tuoguan.otlpEndpoint" -}}
{{- if .Values.observability.enabled -}}
{{- printf "http://%s-otel-collector:4317" (include "tuoguan.fullname" .) -}}
{{- else -}}
{{- .Values.observability.otlpEndpoint -}}
{{- end -}}
{{- end -}}

{{/*
Restricted container and pod security for the chart's own infrastructure
(PostgreSQL, RabbitMQ, Redis, Prometheus, Grafana, the collector): (dict "uid" 999)
*/}}
{{- define "tuoguan.infraPodSecurity" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- define "tuoguan.infraContainerSecurity" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
Egress to one piece of infrastructure: (dict "root" $ "what" "postgres")
In the chart: its pods; outside: its port, to external.networkPeers (any address when empty).
*/}}
{{- define "tuoguan.infraEgress" -}}
{{- $root := .root -}}
{{- $values := dict "postgres" $root.Values.postgresql "rabbitmq" $root.Values.rabbitmq "redis" $root.Values.redis -}}
{{- $ports := dict "postgres" 5432 "rabbitmq" 5672 "redis" 6379 -}}
{{- $components := dict "postgres" "postgresql" "rabbitmq" "rabbitmq" "redis" "redis" -}}
{{- $v := index $values .what -}}
{{- if $v.enabled }}
- to:
    {{- include "tuoguan.peer" (dict "root" $root "component" (index $components .what)) | nindent 4 }}
  ports:
    - port: {{ index $ports .what }}
      protocol: TCP
{{- else }}
- ports:
    - port: {{ $v.external.port }}
      protocol: TCP
  {{- with $v.external.networkPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Egress to DNS, for every pod of the chart. */}}
{{- define "tuoguan.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  {{- with .Values.networkPolicy.dnsPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Egress to the OpenTelemetry collector, when traces go somewhere. */}}
{{- define "tuoguan.otlpEgress" -}}
{{- if .Values.observability.enabled }}
- to:
    {{- include "tuoguan.peer" (dict "root" . "component" "otel-collector") | nindent 4 }}
  ports:
    - port: 4317
      protocol: TCP
{{- else if .Values.observability.otlpEndpoint }}
- ports:
    - port: {{ .Values.observability.otlpPort }}
      protocol: TCP
  {{- with .Values.observability.otlpNetworkPeers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Who may scrape metrics: the configured peers and the in-chart Prometheus. */}}
{{- define "tuoguan.metricsPeers" -}}
{{- with .Values.networkPolicy.metricsFrom }}
{{ toYaml . }}
{{- end }}
{{- if .Values.observability.enabled }}
{{ include "tuoguan.peer" (dict "root" . "component" "prometheus") }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the platform's pods: (dict "root" $ "c" $component) */}}
{{- define "tuoguan.podCommon" -}}
serviceAccountName: {{ include "tuoguan.serviceAccountName" .root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .c.podSecurityContext | nindent 2 }}
{{- end -}}

{{/*
The environment of a platform process: (dict "root" $ "name" "billing-api" "c" $c "components" $components)
*/}}
{{- define "tuoguan.env" -}}
{{- $root := .root -}}
{{- $c := .c -}}
{{- $svc := upper (replace "-" "_" $c.service) -}}
{{- $credentials := include "tuoguan.credentialsSecret" $root -}}
{{- $env := mergeOverwrite (deepCopy (default dict $root.Values.env)) (default dict $c.env) -}}
{{- range $key := keys $env | sortAlpha }}
- name: {{ $key }}
  value: {{ index $env $key | toString | quote }}
{{- end }}
{{- /*
The processes listen on 127.0.0.1 unless told otherwise (a developer's
`make up`); in a pod the kubelet's probes, the Services and Prometheus come
from outside it, so each listens on every interface, unless a values file's
env names another address ("::" on an IPv6-only cluster).
*/}}
{{- $hosts := list }}
{{- if eq $c.kind "api" }}{{ $hosts = list "TUOGUAN_GRPC_HOST" "TUOGUAN_METRICS_HOST" }}
{{- else if eq $c.kind "worker" }}{{ $hosts = list "TUOGUAN_METRICS_HOST" }}
{{- else if eq $c.kind "gateway" }}{{ $hosts = list "GATEWAY_HOST" }}{{ end }}
{{- range $hosts }}
{{- if not (hasKey $env .) }}
- name: {{ . }}
  value: "0.0.0.0"
{{- end }}
{{- end }}
{{- if eq $c.kind "api" }}
- name: {{ $svc }}_GRPC_PORT
  value: {{ $c.ports.grpc | quote }}
- name: {{ $svc }}_METRICS_PORT
  value: {{ $c.ports.metrics | quote }}
{{- else if eq $c.kind "worker" }}
- name: {{ $svc }}_WORKER_METRICS_PORT
  value: {{ $c.ports.metrics | quote }}
{{- else if eq $c.kind "gateway" }}
- name: GATEWAY_PORT
  value: {{ $c.ports.http | quote }}
- name: GATEWAY_SESSION_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $credentials }}
      key: session-secret
{{- end }}
{{- range $dep := $c.dependsOn }}
{{- $d := index $.components $dep }}
- name: {{ upper (replace "-" "_" $d.service) }}_ADDR
  {{- /* Every replica's address, so the client's round_robin spreads calls over them. */}}
  value: {{ printf "dns:///%s:%v" (include "tuoguan.headlessDns" (dict "root" $root "component" $dep)) $d.ports.grpc | quote }}
{{- end }}
{{- if has "postgres" $c.uses }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $credentials }}
      key: database-url
- name: {{ $svc }}_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $credentials }}
      key: {{ $c.service }}-database-url
      optional: true
{{- end }}
{{- if has "rabbitmq" $c.uses }}
- name: AMQP_URI
  valueFrom:
    secretKeyRef:
      name: {{ $credentials }}
      key: amqp-uri
{{- end }}
{{- if has "redis" $c.uses }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $credentials }}
      key: redis-url
{{- end }}
- name: TUOGUAN_TOKEN_PUBLIC_KEY_FILE
  value: /etc/tuoguan/keys/token-verify.pem
{{- if $c.signsTokens }}
- name: TUOGUAN_TOKEN_PRIVATE_KEY_FILE
  value: /etc/tuoguan/keys/token-signing.pem
{{- end }}
{{- if $c.paymentTickets }}
- name: TUOGUAN_PAYMENT_TICKET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $credentials }}
      key: payment-ticket-key
      {{- /* An existing Secret without it: billing asks registration about every booking. */}}
      optional: true
{{- end }}
{{- range $name := keys (default dict $c.secretEnv) | sortAlpha }}
{{- $ref := index $c.secretEnv $name }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $credentials }}
      key: {{ $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- with include "tuoguan.otlpEndpoint" $root }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* A component's headless Service, fully qualified: (dict "root" $ "component" "gateway") */}}
{{- define "tuoguan.headlessDns" -}}
{{- printf "%s-headless.%s.svc.%s" (include "tuoguan.componentName" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/* A component's metrics Service (every pod, ready or not): (dict "root" $ "component" "gateway") */}}
{{- define "tuoguan.metricsServiceName" -}}
{{- printf "%s-metrics" (include "tuoguan.componentName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- define "tuoguan.metricsDns" -}}
{{- printf "%s.%s.svc.%s" (include "tuoguan.metricsServiceName" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end -}}

{{/*
The components this release runs, as the rule group TuoguanServiceAbsent reads
(observability/prometheus/rules/alerts-platform.yml): one series
service_process:tuoguan_component:deployed per component with replicas (a
component at replicas 0 without an autoscaler runs nothing and is not missed).
(dict "root" $ "namespace" true|false): with the namespace label, for a
Prometheus whose targets carry it (the Prometheus Operator's).
*/}}
{{- define "tuoguan.deployedComponentsGroup" -}}
{{- $root := .root -}}
{{- $rules := list -}}
{{- range $name, $c := include "tuoguan.components" $root | fromYaml -}}
{{- if or $c.autoscaling.enabled (gt (int $c.replicas) 0) -}}
{{- $labels := dict "service" $c.service "process" $c.kind -}}
{{- if $.namespace }}{{ $_ := set $labels "namespace" $root.Release.Namespace }}{{ end -}}
{{- $rules = append $rules (dict "record" "service_process:tuoguan_component:deployed" "expr" "vector(1)" "labels" $labels) -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "name" "tuoguan-deployment.recording" "rules" $rules) -}}
{{- end -}}

{{/*
The in-chart collector's configuration: observability.otelCollector.config when
set; else the repository's observability/otel-collector/config.yaml with the
traces exporter pointed at tracesEndpoint (or left out when that is empty);
else OTLP in, debug out.
*/}}
{{- define "tuoguan.otelCollectorConfig" -}}
{{- $o := .Values.observability.otelCollector -}}
{{- $file := .Files.Get $o.configFile -}}
{{- if $o.config -}}
{{- $o.config -}}
{{- else if $file -}}
{{- $cfg := fromYaml $file -}}
{{- if hasKey $cfg "Error" }}{{ fail (printf "%s: %s" $o.configFile $cfg.Error) }}{{ end -}}
{{- $exporters := default dict $cfg.exporters -}}
{{- if hasKey $exporters $o.tracesExporter -}}
{{- if $o.tracesEndpoint -}}
{{- $_ := set (index $exporters $o.tracesExporter) "endpoint" $o.tracesEndpoint -}}
{{- else -}}
{{- $_ := unset $exporters $o.tracesExporter -}}
{{- range $name, $pipeline := (default dict (default dict $cfg.service).pipelines) -}}
{{- $_ := set $pipeline "exporters" (without (default list $pipeline.exporters) $o.tracesExporter) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- else -}}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
      http:
        endpoint: 0.0.0.0:4318
processors:
  batch: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
{{- end -}}
{{- end -}}

{{/*
The in-chart Prometheus's prometheus.yml (templates/observability.yaml): the
same jobs and target labels as observability/prometheus/prometheus.yml.
*/}}
{{- define "tuoguan.prometheusConfig" -}}
{{- $root := . -}}
{{- $o := .Values.observability -}}
{{- $components := include "tuoguan.components" . | fromYaml -}}
{{- /* Prometheus refuses a scrape timeout above the interval: 10s, or the interval when shorter. */ -}}
{{- $interval := $o.prometheus.scrapeInterval -}}
{{- $count := regexFind "^[0-9]+" $interval -}}
{{- $unitMs := get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) (trimPrefix $count $interval) -}}
{{- $timeout := "10s" -}}
{{- if lt (mul (atoi $count) $unitMs) 10000 }}{{ $timeout = $interval }}{{ end -}}
# Generated by the chart: the same jobs and target labels as
# observability/prometheus/prometheus.yml (service, process), with every
# replica, ready or not, found through its component's metrics Service.
global:
  scrape_interval: {{ $interval }}
  scrape_timeout: {{ $timeout }}
  evaluation_interval: {{ $o.prometheus.scrapeInterval }}
  # On every alert it sends: its targets carry no namespace (this Prometheus
  # sees one release), but an Alertmanager hearing several releases (staging,
  # production) ties its inhibitions by it, as the Prometheus Operator's
  # targets carry it. Without it, one release's cause would quiet another's.
  external_labels:
    namespace: {{ $root.Release.Namespace | quote }}
rule_files:
  - /etc/prometheus/rules/*.yml
  - /etc/prometheus/rules/*.yaml
{{- with $o.prometheus.alerting.alertmanagers }}
# observability.prometheus.alerting: route them with observability/alertmanager/alertmanager.yml.
alerting:
  alertmanagers:
    - scheme: {{ $o.prometheus.alerting.scheme }}
      {{- with $o.prometheus.alerting.pathPrefix }}
      path_prefix: {{ . | quote }}
      {{- end }}
      static_configs:
        - targets: {{ toJson . }}
{{- else }}
# No alerting: block: observability.prometheus.alerting.alertmanagers is
# empty, so the alerts reach nobody (they show on /alerts).
{{- end }}
scrape_configs:
  {{- range $kind := list "api" "worker" "gateway" }}
  {{- $members := list }}
  {{- range $name, $c := $components }}{{ if eq $c.kind $kind }}{{ $members = append $members $name }}{{ end }}{{ end }}
  {{- if $members }}
  - job_name: tuoguan-{{ $kind }}
    metrics_path: /metrics
    honor_labels: {{ ne $kind "gateway" }}
    dns_sd_configs:
      {{- range $name := $members }}
      {{- $c := index $components $name }}
      - names: [{{ include "tuoguan.metricsDns" (dict "root" $root "component" $name) }}]
        type: A
        port: {{ include "tuoguan.metricsPort" $c }}
      {{- end }}
    relabel_configs:
      {{- range $name := $members }}
      {{- $c := index $components $name }}
      {{- range $label, $value := dict "service" $c.service "process" $c.kind }}
      - source_labels: [__meta_dns_name]
        regex: {{ include "tuoguan.metricsDns" (dict "root" $root "component" $name) | regexQuoteMeta | quote }}
        target_label: {{ $label }}
        replacement: {{ $value }}
      {{- end }}
      {{- end }}
  {{- end }}
  {{- end }}
  - job_name: prometheus
    static_configs:
      - targets: [localhost:9090]
{{- end -}}
