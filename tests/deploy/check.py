#!/usr/bin/python3
"""Checks the files of deploy/: compose.yaml, the Kubernetes manifests, the Containerfile and the
systemd units (systemd-analyze verify and security). Then breaks each checked field once, in
memory, and requires the check to notice, so that no check here can silently pass.

Usage: check.py SOURCE_DIR DOCKET_BINARY   (run by ctest as deploy_files_are_valid)
"""
import contextlib
import copy
import http.server
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib

import yaml

# The highest `systemd-analyze security` exposure a unit may have (deploy/README.md states it).
MAX_EXPOSURE = 2.0
# Seconds a worker gets to either refuse an example config or start waiting for its database.
CONFIG_PATIENCE = 60
# worker.shutdown_timeout when the config sets none.
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
# Options every unit must carry, with their value (deploy/README.md lists what to relax).
HARDENING = {
    "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "RestrictSUIDSGID": "yes", "SystemCallArchitectures": "native",
}
# Packages a final stage must not install: compilers and headers belong to the build stage.
BUILD_TOOLS = re.compile(r"(?<![\w.+-])(build-essential|cmake|gcc|g\+\+|clang|make|pkg-config|[\w.+-]+-dev)(?![\w.+-])")
# Packages debian:12-slim already has, so the final stage need not install them.
SLIM_BASE = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
UNITS = ("docket-worker@.service", "docket-api.service")


# Checks that could not run here (a tool is missing); their broken variants are not tried.
SKIPPED = set()
# Broken variants that cannot be noticed here, by name.
SKIPPED_MUTATIONS = set()


def skip(check, why):
    """Says that a check cannot run on this machine, and why; a check returns this (no errors)."""
    print(f"SKIP {why}")
    SKIPPED.add(check)
    return []


def seconds(value):
    """A duration as compose, TOML config or Kubernetes write it ("45s", "1m30s", 45) in seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value).strip():
        raise ValueError(f"not a duration: {value!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)


def load(src):
    """Everything under deploy/ the checks read, as plain data (so self-tests can break it)."""
    deploy = os.path.join(src, "deploy")
    with open(os.path.join(deploy, "compose.yaml")) as f:
        compose = yaml.safe_load(f)
    configs, config_texts = {}, {}
    for service in compose.get("services", {}).values():
        for volume in service.get("volumes", []) or []:
            host = str(volume).split(":")[0]
            if host.endswith(".toml"):
                label = "deploy/" + os.path.normpath(host)
                with open(os.path.join(deploy, host)) as f:
                    config_texts[label] = f.read()
                configs[host] = tomllib.loads(config_texts[label])
    k8s = []
    k8s_dir = os.path.join(deploy, "k8s")
    for name in sorted(os.listdir(k8s_dir)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(k8s_dir, name)) as f:
                k8s += [(name, d) for d in yaml.safe_load_all(f) if d is not None]
    with open(os.path.join(deploy, "container", "Containerfile")) as f:
        containerfile = f.read()
    units = {}
    for name in UNITS:
        with open(os.path.join(deploy, "systemd", name)) as f:
            units[name] = f.read()
    for name, doc in k8s:
        if doc.get("kind") == "ConfigMap" and "docket.toml" in doc.get("data", {}):
            config_texts[f"deploy/k8s/{name}"] = doc["data"]["docket.toml"]
    return {"compose": compose, "configs": configs, "config_texts": config_texts, "k8s": k8s, "containerfile": containerfile,
            "units": units}


# --- compose ----------------------------------------------------------------------------------

def command_of(service):
    cmd = service.get("command", [])
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def compose_shutdown_timeout(bundle, service):
    env = service.get("environment") or {}
    if "DOCKET_WORKER_SHUTDOWN_TIMEOUT" in env:
        return seconds(env["DOCKET_WORKER_SHUTDOWN_TIMEOUT"])
    for volume in service.get("volumes", []) or []:
        host = str(volume).split(":")[0]
        if host in bundle["configs"]:
            value = bundle["configs"][host].get("worker", {}).get("shutdown_timeout")
            return seconds(value) if value is not None else DEFAULT_SHUTDOWN_TIMEOUT
    return DEFAULT_SHUTDOWN_TIMEOUT


def after_migrate(name, service):
    cond = (service.get("depends_on") or {}).get("migrate", {})
    if not isinstance(cond, dict) or cond.get("condition") != "service_completed_successfully":
        return [f"compose: {name} must depend on migrate with condition service_completed_successfully"]
    return []


def check_compose(bundle):
    errors = []
    services = bundle["compose"].get("services", {})
    pg = services.get("postgres", {})
    if not str(pg.get("image", "")).startswith("postgres:") or "healthcheck" not in pg:
        errors.append("compose: postgres needs a postgres: image and a healthcheck")
    migrate = services.get("migrate", {})
    if "migrate" not in command_of(migrate):
        errors.append("compose: the migrate service must run `docket migrate`")
    if migrate.get("restart") != "no":
        errors.append('compose: migrate must run once (restart: "no")')
    if (migrate.get("depends_on") or {}).get("postgres", {}).get("condition") != "service_healthy":
        errors.append("compose: migrate must wait for postgres to be healthy")
    api = services.get("api", {})
    if "api" not in command_of(api):
        errors.append("compose: the api service must run `docket api`")
    errors += after_migrate("api", api)
    if "/ready" not in " ".join(map(str, api.get("healthcheck", {}).get("test", []))):
        errors.append("compose: the api healthcheck must ask GET /ready")
    if len(str((api.get("environment") or {}).get("DOCKET_API_TOKENS", ""))) < 16:
        errors.append("compose: api needs DOCKET_API_TOKENS of at least 16 characters")
    workers = {n: s for n, s in services.items() if "worker" in command_of(s)}
    if len(workers) < 2:
        errors.append(f"compose: two worker services wanted, found {len(workers)}")
    for name, worker in workers.items():
        errors += after_migrate(name, worker)
        grace = seconds(worker.get("stop_grace_period", "10s"))  # compose's default
        timeout = compose_shutdown_timeout(bundle, worker)
        if grace <= timeout:
            errors.append(f"compose: {name} stop_grace_period {grace:g}s must exceed shutdown_timeout {timeout:g}s")
    for name in ["migrate", "api", *workers]:
        if "DATABASE_URL" not in (services.get(name, {}).get("environment") or {}):
            errors.append(f"compose: {name} needs DATABASE_URL")
    return errors


def check_configs_load(bundle):
    """`docket worker` itself loads every example docket.toml against an unreachable database: a
    worker that accepts its configuration (and has kinds to run) logs db.unavailable and waits for
    the database; one that refuses it exits with code 2 and says why."""
    errors = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_") and k != "DATABASE_URL"}
    with tempfile.TemporaryDirectory() as directory:
        for label, text in bundle["config_texts"].items():
            path = os.path.join(directory, "docket.toml")
            with open(path, "w") as f:
                f.write(text)
            worker = subprocess.Popen([bundle["docket_bin"], "--config", path, "--database-url",
                                       "postgresql://docket@127.0.0.1:1/none", "worker"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
            watchdog = threading.Timer(CONFIG_PATIENCE, worker.kill)
            watchdog.start()
            said = []
            for line in worker.stderr:  # ends when the worker exits (or the watchdog kills it)
                said.append(line.strip())
                if "db.unavailable" in line:  # configuration accepted, now waiting for its database
                    break
            watchdog.cancel()
            worker.kill()
            code = worker.wait()
            worker.stderr.close()
            if not said or "db.unavailable" not in said[-1]:
                errors.append(f"{label}: docket worker refuses it (exit {code}): {' '.join(said)}")
    if not bundle["config_texts"]:
        errors.append("no docket.toml found in compose.yaml volumes or a k8s ConfigMap")
    return errors


def run_healthcheck(test, port, status):
    """Runs compose's api healthcheck command (CMD form) against a local server whose /ready
    answers `status`; True when the healthcheck passes."""
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status if self.path == "/ready" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        argv = [str(a).replace(str(port), str(server.server_port)) for a in test[1:]]
        return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
    finally:
        server.shutdown()
        server.server_close()


def check_compose_healthcheck_runs(bundle):
    """The api healthcheck really speaks HTTP: it passes on 200 from /ready and fails on 503."""
    api = bundle["compose"].get("services", {}).get("api", {})
    test = api.get("healthcheck", {}).get("test", [])
    if not test or test[0] != "CMD":
        return ["compose: the api healthcheck must be a CMD list"]
    if not shutil.which(str(test[1])):
        return skip(check_compose_healthcheck_runs, f"running the api healthcheck: {test[1]} is not installed")
    port = re.search(r":(\d+)$", str(api.get("ports", ["8080"])[0])).group(1)
    errors = []
    if not run_healthcheck(test, port, 200):
        errors.append("compose: the api healthcheck fails although /ready answers 200")
    if run_healthcheck(test, port, 503):
        errors.append("compose: the api healthcheck passes although /ready answers 503")
    return errors


# --- Kubernetes -------------------------------------------------------------------------------

def find(bundle, kind, name):
    for _, doc in bundle["k8s"]:
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name:
            return doc
    return None


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def only_container(doc):
    return pod_spec(doc)["containers"][0]


def env_var(container, name):
    return next((e for e in container.get("env", []) if e.get("name") == name), None)


def from_secret(container, name):
    var = env_var(container, name)
    return bool(var) and "value" not in var and "secretKeyRef" in var.get("valueFrom", {})


def k8s_shutdown_timeout(bundle, deployment):
    container = only_container(deployment)
    var = env_var(container, "DOCKET_WORKER_SHUTDOWN_TIMEOUT")
    if var and "value" in var:
        return seconds(var["value"])
    for volume in pod_spec(deployment).get("volumes", []):
        if "configMap" in volume:
            cm = find(bundle, "ConfigMap", volume["configMap"]["name"])
            if cm and "docket.toml" in cm.get("data", {}):
                config = tomllib.loads(cm["data"]["docket.toml"])
                return seconds(config.get("worker", {}).get("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT))
    return DEFAULT_SHUTDOWN_TIMEOUT


def check_k8s_objects(bundle):
    errors = []
    for file, doc in bundle["k8s"]:
        for field in ("apiVersion", "kind"):
            if not doc.get(field):
                errors.append(f"k8s {file}: a document has no {field}")
        if not doc.get("metadata", {}).get("name"):
            errors.append(f"k8s {file}: a document has no metadata.name")
    for kind, name in [("Job", "docket-migrate"), ("Deployment", "docket-worker"), ("Deployment", "docket-api"),
                       ("Service", "docket-api"), ("PodDisruptionBudget", "docket-worker"),
                       ("HorizontalPodAutoscaler", "docket-worker"), ("ConfigMap", "docket-config"),
                       ("Secret", "docket")]:
        if find(bundle, kind, name) is None:
            errors.append(f"k8s: no {kind} {name}")
    return errors


def check_k8s_migrate(bundle):
    job = find(bundle, "Job", "docket-migrate")
    if job is None:
        return ["k8s: no Job docket-migrate"]
    errors = []
    spec = job["spec"]
    if pod_spec(job).get("restartPolicy") not in ("Never", "OnFailure"):
        errors.append("k8s: the migrate Job's restartPolicy must be Never or OnFailure")
    if spec.get("completions", 1) != 1 or spec.get("parallelism", 1) != 1:
        errors.append("k8s: the migrate Job must run once (completions 1, parallelism 1)")
    if "migrate" not in only_container(job).get("args", []):
        errors.append("k8s: the migrate Job must run `docket migrate`")
    return errors


def check_k8s_worker(bundle):
    worker = find(bundle, "Deployment", "docket-worker")
    if worker is None:
        return ["k8s: no Deployment docket-worker"]
    errors = []
    if "worker" not in only_container(worker).get("args", []):
        errors.append("k8s: docket-worker must run `docket worker`")
    grace = pod_spec(worker).get("terminationGracePeriodSeconds", 30)  # Kubernetes' default
    timeout = k8s_shutdown_timeout(bundle, worker)
    if grace <= timeout:
        errors.append(f"k8s: docket-worker terminationGracePeriodSeconds {grace} must exceed shutdown_timeout {timeout:g}s")
    return errors


def check_k8s_api(bundle):
    api = find(bundle, "Deployment", "docket-api")
    service = find(bundle, "Service", "docket-api")
    if api is None or service is None:
        return ["k8s: no Deployment and Service docket-api"]
    errors = []
    container = only_container(api)
    if "api" not in container.get("args", []):
        errors.append("k8s: docket-api must run `docket api`")
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/ready":
        errors.append("k8s: docket-api readinessProbe must be GET /ready")
    if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health":
        errors.append("k8s: docket-api livenessProbe must be GET /health")
    labels = api["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"].get("selector", {})
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        errors.append("k8s: Service docket-api must select the API pods")
    ports = {p.get("name") for p in container.get("ports", [])} | {p.get("containerPort") for p in container.get("ports", [])}
    if any(p.get("targetPort") not in ports for p in service["spec"].get("ports", [])):
        errors.append("k8s: Service docket-api targets a port the API container does not expose")
    return errors


def check_k8s_secrets(bundle):
    errors = []
    wanted = {"docket-migrate": ["DATABASE_URL"], "docket-worker": ["DATABASE_URL"],
              "docket-api": ["DATABASE_URL", "DOCKET_API_TOKENS"]}
    for name, variables in wanted.items():
        doc = find(bundle, "Job", name) or find(bundle, "Deployment", name)
        for variable in variables:
            if doc is None or not from_secret(only_container(doc), variable):
                errors.append(f"k8s: {name} must take {variable} from a Secret (secretKeyRef)")
    return errors


def check_k8s_non_root(bundle):
    errors = []
    for _, doc in bundle["k8s"]:
        if doc.get("kind") not in ("Job", "Deployment"):
            continue
        name = doc["metadata"]["name"]
        pod = pod_spec(doc).get("securityContext", {})
        for container in pod_spec(doc)["containers"]:
            sc = {**pod, **container.get("securityContext", {})}
            if sc.get("runAsNonRoot") is not True or sc.get("runAsUser", 0) == 0:
                errors.append(f"k8s: {name}/{container['name']} must set runAsNonRoot and a non-zero runAsUser")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"k8s: {name}/{container['name']} must set allowPrivilegeEscalation: false")
    return errors


def check_k8s_pdb_hpa(bundle):
    errors = []
    worker = find(bundle, "Deployment", "docket-worker")
    api = find(bundle, "Deployment", "docket-api")
    pdb = find(bundle, "PodDisruptionBudget", "docket-worker")
    if worker is None or pdb is None:
        return ["k8s: no worker Deployment or PodDisruptionBudget"]

    def selects(selector, doc):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        return bool(selector) and all(labels.get(k) == v for k, v in selector.items())

    selector = pdb["spec"].get("selector", {}).get("matchLabels", {})
    if not selects(selector, worker):
        errors.append("k8s: the PodDisruptionBudget must select the worker pods")
    if api is not None and selects(selector, api):
        errors.append("k8s: the PodDisruptionBudget must not select the API pods")
    hpa = find(bundle, "HorizontalPodAutoscaler", "docket-worker")
    if hpa is None:
        return errors + ["k8s: no HorizontalPodAutoscaler docket-worker"]
    target = hpa["spec"].get("scaleTargetRef", {})
    if target.get("kind") != "Deployment" or target.get("name") != "docket-worker":
        errors.append("k8s: the HPA must target Deployment docket-worker")
    if "docket_jobs" not in yaml.safe_dump(hpa["spec"].get("metrics", [])):
        errors.append("k8s: the HPA must scale on the queue depth (docket_jobs)")
    if not 1 <= hpa["spec"].get("minReplicas", 1) <= hpa["spec"].get("maxReplicas", 0):
        errors.append("k8s: the HPA needs 1 <= minReplicas <= maxReplicas")
    return errors


# --- Containerfile ----------------------------------------------------------------------------

def stages(containerfile):
    """[(base image, [instructions])] per FROM, continuation lines joined."""
    text = re.sub(r"\\\n", " ", containerfile)
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append((line.split()[1], []))
        elif out:
            out[-1][1].append(line)
    return out


def runtime_packages(docket_bin):
    """Debian packages of the libraries the binary links directly, or None without the tools."""
    if not (shutil.which("readelf") and shutil.which("dpkg") and shutil.which("ldd")):
        return None
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]",
                        subprocess.run(["readelf", "-d", docket_bin], capture_output=True, text=True).stdout)
    paths = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(["ldd", docket_bin], capture_output=True,
                                                                   text=True).stdout, re.M))
    packages = set()
    for lib in needed:
        path = paths.get(lib)
        if path is None:
            continue
        found = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
        if found.returncode != 0:
            found = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if found.returncode == 0:
            packages.add(found.stdout.split(":")[0])
    return packages or None  # none found: the binary was not installed from Debian packages


def check_containerfile(bundle):
    errors = []
    all_stages = stages(bundle["containerfile"])
    if len(all_stages) < 2:
        return ["Containerfile: must be multi-stage (a build stage and a runtime stage)"]
    for base, _ in all_stages:
        if not re.fullmatch(r"debian:(12|bookworm)(-slim)?(@sha256:[0-9a-f]+)?", base):
            errors.append(f"Containerfile: base {base} is not Debian 12")
    base, final = all_stages[-1]
    if not base.split("@")[0].endswith("-slim"):
        errors.append("Containerfile: the runtime stage must start from debian:12-slim")
    users = [i.split()[1] for i in final if i.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        errors.append("Containerfile: the runtime stage must end as a non-root USER")
    installs = " ".join(i for i in final if "apt-get install" in i or "apt install" in i)
    tools = sorted({m for m in BUILD_TOOLS.findall(installs)})
    if tools:
        errors.append(f"Containerfile: the runtime stage installs build tools: {', '.join(tools)}")
    if not any(i.upper().startswith("COPY --FROM=") and "docket" in i for i in final):
        errors.append("Containerfile: the runtime stage must copy the docket binary from the build stage")
    if not any(i.upper().startswith("ENTRYPOINT") and "docket" in i for i in final):
        errors.append('Containerfile: ENTRYPOINT ["docket"] wanted')
    packages = bundle.get("runtime_packages")
    if packages:
        missing = sorted(p for p in packages - SLIM_BASE if not re.search(rf"(?<![\w.+-]){re.escape(p)}(?![\w.+-])", installs))
        if missing:
            errors.append(f"Containerfile: the runtime stage does not install {', '.join(missing)} (ldd of docket)")
    return errors


# --- systemd ----------------------------------------------------------------------------------

def unit_settings(text):
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def check_units(bundle):
    errors = []
    config = next(iter(bundle["configs"].values()), {})
    timeout = seconds(config.get("worker", {}).get("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT))
    for name, text in bundle["units"].items():
        settings = unit_settings(text)
        for key, value in HARDENING.items():
            if value not in settings.get(key, []):
                errors.append(f"systemd {name}: {key}={value} wanted")
        if "@system-service" not in settings.get("SystemCallFilter", []):
            errors.append(f"systemd {name}: SystemCallFilter=@system-service wanted")
        if any(u in ("root", "0") for u in settings.get("User", ["root"])):
            errors.append(f"systemd {name}: must run as a non-root User=")
    worker = unit_settings(bundle["units"]["docket-worker@.service"])
    if not any("%i" in v for v in worker.get("Environment", [])):
        errors.append("systemd docket-worker@.service: each instance needs its own DOCKET_WORKER_NAME (%i)")
    stop_value = worker.get("TimeoutStopSec", ["90"])[-1]  # systemd's default; a bare number is seconds
    stop = seconds(stop_value + "s" if stop_value.isdigit() else stop_value)
    if stop <= timeout:
        errors.append(f"systemd docket-worker@.service: TimeoutStopSec {stop:g}s must exceed shutdown_timeout {timeout:g}s")
    return errors


def systemd_analyze(bundle, check, *args):
    """Runs `systemd-analyze ARGS UNIT` on a copy of each unit whose ExecStart points at the built
    binary (verify wants an executable there), the template as instance @1: [(unit, run)], or
    None when systemd-analyze is not installed."""
    if not shutil.which("systemd-analyze"):
        skip(check, f"systemd-analyze {args[0]}: systemd-analyze is not installed")
        return None
    runs = []
    with tempfile.TemporaryDirectory() as directory:
        for name, text in bundle["units"].items():
            path = os.path.join(directory, name.replace("@.", "@1."))
            with open(path, "w") as f:
                f.write(text.replace("/usr/local/bin/docket", bundle["docket_bin"]))
            runs.append((os.path.basename(path),
                         subprocess.run(["systemd-analyze", *args, path], capture_output=True, text=True)))
    return runs


def check_units_verify(bundle):
    errors = []
    for unit, run in systemd_analyze(bundle, check_units_verify, "verify") or []:
        # verify exits 0 on unknown keys but says so: any output is a defect.
        if run.returncode != 0 or run.stderr.strip() or run.stdout.strip():
            errors.append(f"systemd-analyze verify {unit}: exit {run.returncode}: {(run.stderr + run.stdout).strip()}")
    return errors


def check_units_security(bundle):
    errors = []
    for unit, run in systemd_analyze(bundle, check_units_security, "security", "--offline=true", "--no-pager") or []:
        score = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", run.stdout)
        if run.returncode != 0 and score is None and "offline" in run.stderr:
            return skip(check_units_security, "systemd-analyze security: this systemd has no --offline (needs 250+)")
        if score is None:
            errors.append(f"systemd-analyze security {unit}: no score: {run.stderr.strip()}")
        elif float(score.group(1)) > MAX_EXPOSURE:
            errors.append(f"systemd {unit}: exposure {score.group(1)} above {MAX_EXPOSURE}")
        else:
            print(f"systemd-analyze security {unit}: exposure {score.group(1)}")
    return errors


CHECKS = [check_configs_load, check_compose, check_compose_healthcheck_runs, check_k8s_objects, check_k8s_migrate, check_k8s_worker, check_k8s_api,
          check_k8s_secrets, check_k8s_non_root, check_k8s_pdb_hpa, check_containerfile, check_units,
          check_units_verify, check_units_security]


# --- self-test: every check must fail on a broken field -------------------------------------

def k8s_doc(kind, name):
    return lambda b: find(b, kind, name)


def worker_service(b):
    return b["compose"]["services"]["worker-1"]


def set_unit(unit, old, new):
    def mutate(b):
        assert old in b["units"][unit], old
        b["units"][unit] = b["units"][unit].replace(old, new)
    return mutate


def set_containerfile(old, new):
    def mutate(b):
        assert old in b["containerfile"], old
        b["containerfile"] = b["containerfile"].replace(old, new)
    return mutate


def relabel_pdb(b):
    find(b, "PodDisruptionBudget", "docket-worker")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] = "api"


def literal_database_url(b):
    env_var(only_container(find(b, "Deployment", "docket-worker")), "DATABASE_URL").update(
        {"value": "postgresql://x@db/app"})


def root_api(b):
    pod_spec(find(b, "Deployment", "docket-api"))["securityContext"]["runAsUser"] = 0


def env_override_grace(b):
    only_container(find(b, "Deployment", "docket-worker")).setdefault("env", []).append(
        {"name": "DOCKET_WORKER_SHUTDOWN_TIMEOUT", "value": "2m"})


def config_shutdown_timeout(b):
    next(iter(b["configs"].values()))["worker"]["shutdown_timeout"] = "1m"


def misspell_configmap(b):
    label = next(k for k in b["config_texts"] if "/k8s/" in k)
    b["config_texts"][label] = b["config_texts"][label].replace("concurrency", "concurency")


MUTATIONS = [
    ("ConfigMap docket.toml with a misspelt key", check_configs_load, misspell_configmap),
    ("ConfigMap docket.toml without kinds", check_configs_load,
     lambda b: b["config_texts"].update({k: v.split("[kinds.")[0] for k, v in b["config_texts"].items()})),
    ("compose docket.toml with a bad duration", check_configs_load,
     lambda b: b["config_texts"].update({"deploy/docket.toml": b["config_texts"]["deploy/docket.toml"].replace('"30s"', '"30x"')})),
    ("compose worker grace below shutdown_timeout", check_compose,
     lambda b: worker_service(b).update({"stop_grace_period": "30s"})),
    ("compose config shutdown_timeout raised above the grace", check_compose, config_shutdown_timeout),
    ("compose api healthcheck on /health", check_compose,
     lambda b: b["compose"]["services"]["api"]["healthcheck"].update({"test": ["CMD", "true", "/health"]})),
    ("compose api healthcheck ignores the status", check_compose_healthcheck_runs,
     lambda b: b["compose"]["services"]["api"]["healthcheck"]["test"].__setitem__(-1, "exec 3<>/dev/tcp/127.0.0.1/8080")),
    ("compose api healthcheck asks another path", check_compose_healthcheck_runs,
     lambda b: b["compose"]["services"]["api"]["healthcheck"]["test"].__setitem__(
         -1, b["compose"]["services"]["api"]["healthcheck"]["test"][-1].replace("/ready", "/health"))),
    ("compose migrate restarts", check_compose,
     lambda b: b["compose"]["services"]["migrate"].update({"restart": "on-failure"})),
    ("compose worker starts before migrate completes", check_compose,
     lambda b: worker_service(b).update({"depends_on": {"migrate": {"condition": "service_started"}}})),
    ("compose one worker only", check_compose, lambda b: b["compose"]["services"].pop("worker-2")),
    ("compose short api token", check_compose,
     lambda b: b["compose"]["services"]["api"]["environment"].update({"DOCKET_API_TOKENS": "short"})),
    ("k8s document without apiVersion", check_k8s_objects, lambda b: b["k8s"][0][1].pop("apiVersion")),
    ("k8s migrate Job restarts forever", check_k8s_migrate,
     lambda b: pod_spec(find(b, "Job", "docket-migrate")).update({"restartPolicy": "Always"})),
    ("k8s migrate Job runs twice", check_k8s_migrate,
     lambda b: find(b, "Job", "docket-migrate")["spec"].update({"completions": 2})),
    ("k8s worker grace equal to shutdown_timeout", check_k8s_worker,
     lambda b: pod_spec(find(b, "Deployment", "docket-worker")).update({"terminationGracePeriodSeconds": 30})),
    ("k8s worker env raises shutdown_timeout above the grace", check_k8s_worker, env_override_grace),
    ("k8s api readiness on /health", check_k8s_api,
     lambda b: only_container(find(b, "Deployment", "docket-api"))["readinessProbe"]["httpGet"].update({"path": "/health"})),
    ("k8s api liveness on /ready", check_k8s_api,
     lambda b: only_container(find(b, "Deployment", "docket-api"))["livenessProbe"]["httpGet"].update({"path": "/ready"})),
    ("k8s Service selects other pods", check_k8s_api,
     lambda b: find(b, "Service", "docket-api")["spec"]["selector"].update({"app.kubernetes.io/component": "worker"})),
    ("k8s literal DATABASE_URL", check_k8s_secrets, literal_database_url),
    ("k8s api runs as root", check_k8s_non_root, root_api),
    ("k8s PDB selects the API", check_k8s_pdb_hpa, relabel_pdb),
    ("k8s HPA targets the API", check_k8s_pdb_hpa,
     lambda b: find(b, "HorizontalPodAutoscaler", "docket-worker")["spec"]["scaleTargetRef"].update({"name": "docket-api"})),
    ("Containerfile single stage", check_containerfile, lambda b: b.update({"containerfile": "FROM debian:12-slim\nUSER 10001\n"})),
    ("Containerfile runtime on another base", check_containerfile, set_containerfile("FROM debian:12-slim", "FROM ubuntu:24.04")),
    ("Containerfile runtime as root", check_containerfile, set_containerfile("USER 10001:10001", "USER root")),
    ("Containerfile compiler in runtime", check_containerfile, set_containerfile("ca-certificates tzdata", "ca-certificates tzdata g++")),
    ("Containerfile runtime misses libpq5", check_containerfile, set_containerfile(" libpq5 ", " ")),
    ("unit without MemoryDenyWriteExecute", check_units,
     set_unit("docket-api.service", "MemoryDenyWriteExecute=yes", "MemoryDenyWriteExecute=no")),
    ("worker unit stops before shutdown_timeout", check_units,
     set_unit("docket-worker@.service", "TimeoutStopSec=60", "TimeoutStopSec=20")),
    ("worker instances share a name", check_units,
     set_unit("docket-worker@.service", "DOCKET_WORKER_NAME=%H-%i", "DOCKET_WORKER_NAME=%H")),
    ("unit with a misspelt key", check_units_verify, set_unit("docket-api.service", "ProtectHome=", "ProtectHom=")),
    ("unit starting a missing program", check_units_verify,
     set_unit("docket-worker@.service", "ExecStart=/usr/local/bin/docket", "ExecStart=/nonexistent/docket")),
    ("unit without its sandbox", check_units_security,
     set_unit("docket-api.service", "ProtectSystem=strict", "ProtectSystem=no\nPrivateNetwork=no\nProtectHome=no\n"
              "SystemCallFilter=\nPrivateDevices=no\nCapabilityBoundingSet=~\nPrivateUsers=no\nRestrictNamespaces=no\n"
              "ProtectKernelTunables=no\nProtectKernelModules=no\nProtectControlGroups=no\nRestrictAddressFamilies=\n"
              "User=root\nNoNewPrivileges=no\nMemoryDenyWriteExecute=no")),
]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    bundle = load(sys.argv[1])
    bundle["docket_bin"] = os.path.abspath(sys.argv[2])
    bundle["runtime_packages"] = runtime_packages(bundle["docket_bin"])
    if bundle["runtime_packages"] is None:
        print("SKIP runtime libraries of the Containerfile: no Debian package found for docket's libraries (readelf, ldd, dpkg)")
        SKIPPED_MUTATIONS.add("Containerfile runtime misses libpq5")
    errors = [e for check in CHECKS for e in check(bundle)]
    tried = 0
    for name, check, mutate in MUTATIONS:
        if check in SKIPPED or name in SKIPPED_MUTATIONS:
            continue
        tried += 1
        broken = copy.deepcopy(bundle)
        mutate(broken)
        with contextlib.redirect_stdout(io.StringIO()):
            passed = not check(broken)
        if passed:
            errors.append(f"self-test: {check.__name__} passes with '{name}'")
    for e in errors:
        print("FAIL", e)
    print(f"{len(CHECKS) - len(SKIPPED)} of {len(CHECKS)} checks, {tried} of {len(MUTATIONS)} broken variants: "
          f"{'FAILED' if errors else 'ok'}")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
