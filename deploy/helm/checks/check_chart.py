"""Checks the Helm chart with Helm's own engine (the helm-python-sdk): strict lint, render
for the default and the sidecar values, validation of every rendered manifest against the
Kubernetes schemas (kubernetes-validate, strict), the rendered paybridge.toml accepted by
`paybridge config validate`, and the misconfigurations the chart must refuse.

    python check_chart.py CHART_DIR PAYBRIDGE_BINARY
"""

import os
import shutil
import subprocess
import sys
import tempfile

import helm_python
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.33.0"
failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
        print(f"FAIL {message}")


def values_file(chart, name):
    with open(os.path.join(chart, name)) as f:
        return yaml.safe_load(f) or {}


def render(chart, values, name="pb"):
    loaded = helm_python.Chart.load(chart)
    return loaded.render(values, name=name, namespace="payments")


def manifests(rendered):
    for path, text in sorted(rendered.items()):
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                yield path, doc


def check_values(chart, label, values, binary):
    lint = helm_python.lint(chart, values, strict=True)
    check(not lint.get("errors"), f"{label}: lint errors {lint.get('errors')}")
    warnings = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2]
    check(not warnings, f"{label}: lint warnings {warnings}")
    rendered = render(chart, values)
    docs = list(manifests(rendered))
    kinds = {doc["kind"] for _, doc in docs}
    check({"Deployment", "ConfigMap", "Service"} <= kinds, f"{label}: rendered kinds {kinds}")
    for path, doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # a CRD: not in the Kubernetes schemas
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except Exception as e:  # the library raises several error types
            check(False, f"{label}: {path} ({doc['kind']}) is not valid Kubernetes {KUBERNETES_VERSION}: {e}")
    deployment = next(doc for _, doc in docs if doc["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    paybridge = next(c for c in pod["containers"] if c["name"] == "paybridge")
    check(paybridge["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{label}: readiness probe")
    check(paybridge["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{label}: liveness probe")
    sc = paybridge["securityContext"]
    check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
          and sc.get("capabilities", {}).get("drop") == ["ALL"], f"{label}: container securityContext {sc}")
    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001, f"{label}: paybridge runs as non-root 10001")
    check("runAsUser" not in pod.get("securityContext", {}) and "runAsNonRoot" not in pod.get("securityContext", {}),
          f"{label}: the pod's security context forces no user on other containers: {pod.get('securityContext')}")
    version = chart_version(chart)
    check(paybridge["image"] == f"ghcr.io/paybridge/paybridge:{version}" or "image" in values,
          f"{label}: the image follows the chart's appVersion {version}: {paybridge['image']}")
    for env in paybridge.get("env", []):
        check("value" not in env or not env["name"].endswith("SECRET"), f"{label}: secret {env['name']} inlined")
    config = next(doc for _, doc in docs if doc["kind"] == "ConfigMap")["data"]["paybridge.toml"]
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config)
    env = dict(os.environ)
    for e in paybridge.get("env", []):
        env.setdefault(e["name"], "from-a-secret")
    result = subprocess.run([binary, "config", "validate", "--config", f.name], capture_output=True, text=True, env=env)
    os.unlink(f.name)
    check(result.returncode == 0, f"{label}: the rendered config is refused: {result.stderr}{config}")
    return pod


def chart_version(chart):
    return values_file(chart, "Chart.yaml")["appVersion"]


def refuses(chart, label, values, needle):
    try:
        render(chart, values)
    except helm_python.HelmError as e:
        check(needle in str(e), f"{label}: refused, but the message lacks {needle!r}: {e}")
        return
    check(False, f"{label}: rendered, but must be refused")


def embedded_chart(chart, binary):
    """The documented way for another chart to run paybridge in its own pod: this chart as a
    dependency with `paybridge.embedded: true`, its templates included in the pod."""
    version = values_file(chart, "Chart.yaml")["version"]
    with tempfile.TemporaryDirectory() as parent:
        with open(os.path.join(parent, "Chart.yaml"), "w") as f:
            yaml.safe_dump({"apiVersion": "v2", "name": "gateway", "version": "1.0.0", "dependencies": [
                {"name": "paybridge", "version": version, "repository": "file://charts/paybridge"}]}, f)
        shutil.copytree(chart, os.path.join(parent, "charts", "paybridge"))
        os.makedirs(os.path.join(parent, "templates"))
        with open(os.path.join(parent, "templates", "deployment.yaml"), "w") as f:
            f.write(EMBEDDING_DEPLOYMENT)
        with open(os.path.join(parent, "values.yaml"), "w") as f:
            yaml.safe_dump({"paybridge": {"embedded": True, "config": {"intake": {"listen": "127.0.0.1:8080"}}}}, f)
        docs = [doc for _, doc in manifests(render(parent, {}, name="shop"))]
    deployments = [doc for doc in docs if doc["kind"] == "Deployment"]
    check([d["metadata"]["name"] for d in deployments] == ["shop-gateway"],
          f"embedded: only the including chart's Deployment: {[d['metadata']['name'] for d in deployments]}")
    check(not {doc["kind"] for doc in docs} & {"Service", "NetworkPolicy", "PodDisruptionBudget"},
          f"embedded: no workload objects of paybridge's own: {[doc['kind'] for doc in docs]}")
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except Exception as e:
            check(False, f"embedded: {doc['kind']} is not valid Kubernetes: {e}")
    configmaps = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "ConfigMap"]
    if not deployments:
        return
    pod = deployments[0]["spec"]["template"]["spec"]
    paybridge = next((c for c in pod["containers"] if c["name"] == "paybridge"), {})
    check(paybridge.get("image") == f"ghcr.io/paybridge/paybridge:{chart_version(chart)}",
          f"embedded: the image of this chart's version, never latest: {paybridge.get('image')}")
    volume = next((v for v in pod.get("volumes", []) if v["name"] == "paybridge-config"), {})
    check(volume.get("configMap", {}).get("name") in configmaps and len(configmaps) == 1,
          f"embedded: the pod mounts the ConfigMap the dependency renders: {volume} of {configmaps}")


EMBEDDING_DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-gateway
spec:
  selector:
    matchLabels: {app: gateway}
  template:
    metadata:
      labels: {app: gateway}
    spec:
      containers:
        - name: gateway
          image: registry.example.com/payments-gateway:2.4.1
        {{- include "paybridge.container" (dict "Values" .Values.paybridge) | nindent 8 }}
      volumes:
        {{- include "paybridge.volumes" (dict "Values" .Values.paybridge "Release" .Release) | nindent 8 }}
"""


def main():
    chart, binary = sys.argv[1], sys.argv[2]
    defaults = values_file(chart, "values.yaml")
    pod = check_values(chart, "default values", {}, binary)
    grace = pod["terminationGracePeriodSeconds"]
    check(grace > 25, f"default values: terminationGracePeriodSeconds {grace} <= shutdown.timeout 25s")

    sidecar = values_file(chart, "values-sidecar.yaml")
    pod = check_values(chart, "sidecar values", sidecar, binary)
    names = [c["name"] for c in pod["containers"]]
    check(names == ["gateway", "paybridge"], f"sidecar values: containers {names}")
    env = {e["name"]: e for e in pod["containers"][1].get("env", [])}
    ref = env.get("RIPPLENET_CLIENT_SECRET", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(ref == {"name": "ripplenet-credentials", "key": "client-secret"}, f"sidecar values: secret by reference {ref}")
    gateway = pod["containers"][0]
    check(gateway["securityContext"].get("runAsUser") == 20000, f"sidecar values: the gateway keeps its user {gateway}")
    docs = [doc for _, doc in manifests(render(chart, sidecar))]
    service = next(doc for doc in docs if doc["kind"] == "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    check(service["metadata"]["name"] == "payments-gateway" and set(ports) == {"http", "admin"}
          and ports["http"]["port"] == 8443 and ports["http"]["targetPort"] == 8443,
          f"sidecar values: the Service publishes the gateway's 8443 and admin, not the loopback intake: {service}")
    policy = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    rules = policy[0]["spec"]["ingress"] if policy else []
    opened = [port["port"] for rule in rules for port in rule["ports"]]
    check(sorted(map(str, opened)) == ["8443", "admin"],
          f"sidecar values: the policy opens the gateway's 8443 and admin, not the loopback intake: {rules}")
    workload = next((r for r in rules if r["ports"][0]["port"] == 8443), {})
    check(workload.get("from") == [{"ipBlock": {"cidr": "0.0.0.0/0"}}], f"sidecar values: who reaches 8443: {workload}")
    refuses(chart, "a sidecar port named like paybridge's", {**sidecar, "sidecar": {**sidecar["sidecar"], "containers": [
        {"name": "gateway", "image": "x", "ports": [{"name": "admin", "containerPort": 9000}]}]}}, "paybridge's own")

    replicas = {"replicaCount": 3}
    check_values(chart, "three replicas", replicas, binary)
    docs = [doc for _, doc in manifests(render(chart, replicas))]
    config = next(doc for doc in docs if doc["kind"] == "ConfigMap")["data"]["paybridge.toml"]
    check("[cluster]" in config, f"three replicas: [cluster] turned on in the config:\n{config}")
    pdb = [doc for doc in docs if doc["kind"] == "PodDisruptionBudget"]
    check(len(pdb) == 1 and pdb[0]["spec"].get("maxUnavailable") == 1,
          f"three replicas: a PodDisruptionBudget letting one pod go at a time: {pdb}")
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    check(deployment["spec"]["replicas"] == 3, "three replicas: Deployment replicas")
    own = {"replicaCount": 2, "config": {**defaults["config"], "cluster": {"group_id": "bridges", "session_timeout": "20s"}}}
    config = next(doc for _, doc in manifests(render(chart, own)) if doc["kind"] == "ConfigMap")["data"]["paybridge.toml"]
    check('group_id = "bridges"' in config and config.count("[cluster]") == 1,
          f"replicas with config.cluster: the chart keeps the given section:\n{config}")
    single = next(doc for _, doc in manifests(render(chart, {})) if doc["kind"] == "ConfigMap")["data"]["paybridge.toml"]
    check("[cluster]" not in single, "one replica: no [cluster]")

    everything = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                  "networkPolicy": {"enabled": True, "egress": {"enabled": True, "rules": [
                      {"to": [{"ipBlock": {"cidr": "10.0.0.0/16"}}], "ports": [{"port": 9092, "protocol": "TCP"}]}]}},
                  "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                                                 "whenUnsatisfiable": "ScheduleAnyway",
                                                 "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "paybridge"}}}],
                  "priorityClassName": "payments-critical",
                  "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
                  "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corporate", "readOnly": True}]}
    pod = check_values(chart, "every option", everything, binary)
    docs = [doc for _, doc in manifests(render(chart, everything))]
    kinds = {doc["kind"] for doc in docs}
    check({"ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget"} <= kinds, f"optional objects: {kinds}")
    check(pod.get("priorityClassName") == "payments-critical" and len(pod.get("topologySpreadConstraints", [])) == 1,
          f"every option: priority class and spread: {pod}")
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    check(mounts.get("ca") == "/etc/ssl/corporate" and any(v["name"] == "ca" for v in pod["volumes"]),
          f"every option: the extra volume mounted: {mounts}")
    policy = next(doc for doc in docs if doc["kind"] == "NetworkPolicy")["spec"]
    egress = policy.get("egress", [])
    check(policy["policyTypes"] == ["Ingress", "Egress"] and len(egress) == 2 and egress[0]["ports"][0]["port"] == 53
          and egress[1]["ports"][0]["port"] == 9092, f"every option: egress DNS and the given rules: {policy}")
    rule = next(doc for doc in docs if doc["kind"] == "PrometheusRule")
    alerts = values_file(chart, "files/alerts.yaml")["groups"]
    check(rule["spec"]["groups"] == alerts and len(alerts[0]["rules"]) >= 5,
          f"every option: the PrometheusRule carries files/alerts.yaml: {rule['spec']}")
    check("{{ $labels.source }}" in alerts[0]["rules"][0]["annotations"]["summary"],
          "every option: Prometheus' own templating reaches the rule unrendered")
    kinds = {doc["kind"] for _, doc in manifests(render(chart, {}))}
    check(not kinds & {"ServiceMonitor", "PrometheusRule", "NetworkPolicy"}, f"default values: optional objects off: {kinds}")

    embedded_chart(chart, binary)

    # The nightly reconcile: one CronJob per listed source, valid Kubernetes, a writable /tmp.
    pd = {"kind": "payments_direct", "name": "pd_main", "base_url": "https://pd.example.com",
          "auth": {"token_url": "https://auth.example.com/oauth/token", "client_id": "c",
                   "client_secret": "${PD_SECRET}", "audience": "urn:x"}}
    rn = {**pd, "kind": "ripplenet", "name": "rn"}
    with_sources = {**defaults["config"], "sources": [pd, rn]}
    reconcile = {"config": with_sources, "secretEnv": [{"name": "PD_SECRET", "secretName": "s", "key": "k"}],
                 "reconcile": {"enabled": True, "sources": ["pd_main"], "repair": True,
                               "pushgateway": "http://pushgateway.monitoring:9091"}}
    check_values(chart, "reconcile", reconcile, binary)
    jobs = [doc for _, doc in manifests(render(chart, reconcile)) if doc["kind"] == "CronJob"]
    check(len(jobs) == 1 and jobs[0]["metadata"]["name"] == "pb-paybridge-reconcile-pd-main", f"reconcile: CronJobs {jobs}")
    if jobs:
        pod = jobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        args = container["args"]
        check(args[:3] == ["reconcile", "--config", "/etc/paybridge/paybridge.toml"] and "--repair" in args
              and args[args.index("--source") + 1] == "pd_main" and args[args.index("--from") + 1] == "26h",
              f"reconcile: args {args}")
        env = {e["name"]: e for e in container.get("env", [])}
        check(env.get("PAYBRIDGE_PUSHGATEWAY", {}).get("value") == "http://pushgateway.monitoring:9091"
              and "secretKeyRef" in env.get("PD_SECRET", {}).get("valueFrom", {}), f"reconcile: env {env}")
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        check({"/etc/paybridge", "/tmp"} <= mounts, f"reconcile: mounts {mounts}")
        check(container["securityContext"].get("readOnlyRootFilesystem") is True, "reconcile: read-only root")
        check(pod["restartPolicy"] == "Never" and jobs[0]["spec"]["concurrencyPolicy"] == "Forbid", "reconcile: policies")
    none = [doc for _, doc in manifests(render(chart, {"config": with_sources, "secretEnv": reconcile["secretEnv"]}))
            if doc["kind"] == "CronJob"]
    check(not none, "reconcile: off by default")
    refuses(chart, "reconcile of an unknown source", {**reconcile, "reconcile": {"enabled": True, "sources": ["x"]}},
            "is not a source in config.sources")
    refuses(chart, "reconcile without sources", {"reconcile": {"enabled": True}}, "reconcile.sources")

    # paybridge doctor as an init container: same image, config, environment and mounts.
    doctored = check_values(chart, "doctor init container", {"doctor": {"initContainer": True}}, binary)
    inits = doctored.get("initContainers", [])
    check([c["name"] for c in inits] == ["paybridge-doctor"], f"doctor: init containers {inits}")
    if inits:
        main_container = next(c for c in doctored["containers"] if c["name"] == "paybridge")
        init = inits[0]
        check(init["args"] == ["doctor", "--config", "/etc/paybridge/paybridge.toml"], f"doctor: args {init['args']}")
        for key in ("image", "env", "volumeMounts", "securityContext"):
            check(init.get(key) == main_container.get(key), f"doctor: {key} differs from the paybridge container's")
    plain = next(doc for _, doc in manifests(render(chart, {})) if doc["kind"] == "Deployment")
    check("initContainers" not in plain["spec"]["template"]["spec"], "doctor: no init container by default")

    refuses(chart, "grace below the shutdown timeout", {"terminationGracePeriodSeconds": 20},
            "must exceed config.shutdown.timeout")
    refuses(chart, "values against values.schema.json", {"replicaCount": "two"}, "replicaCount")
    refuses(chart, "a misspelt top-level value", {"replicaCont": 2}, "replicaCont")
    # The config's own schema: what paybridge would refuse at start, the chart refuses at install.
    refuses(chart, "a typo in config.kafka", {"config": {"kafka": {"delivery_timout": "30s"}}}, "delivery_timout")
    refuses(chart, "a wrong type in config.pipeline", {"config": {"pipeline": {"capacity": "many"}}}, "capacity")
    refuses(chart, "an unknown source kind", {"config": {"sources": [{**pd, "kind": "swift"}]}}, "sources")
    check(helm_python.lint(chart, {"config": {"kafka": {"delivery_timout": "30s"}}}, strict=True).get("errors"),
          "a typo in config.kafka: helm lint reports it")
    refuses(chart, "sidecar without a name", {"sidecar": {"enabled": True, "containers": [{"name": "a", "image": "b"}]}},
            "sidecar.name")
    del defaults
    if failures:
        print(f"{len(failures)} chart check(s) failed")
        sys.exit(1)
    print("chart checks passed")


if __name__ == "__main__":
    main()
